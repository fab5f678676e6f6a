package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReadFrame(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader("a\n\nbcd\n"+strings.Repeat("x", 40)+"\nlast"), 16)
	for _, want := range []string{"a", "", "bcd"} {
		got, err := readFrame(r, 10)
		if err != nil || string(got) != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
	if _, err := readFrame(r, 10); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("long line: %v", err)
	}
	r = bufio.NewReaderSize(strings.NewReader("last"), 16)
	if _, err := readFrame(r, 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("partial line: %v", err)
	}
	if _, err := readFrame(r, 10); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	// Exactly at the limit, spanning several buffer fills.
	line := strings.Repeat("y", 40)
	r = bufio.NewReaderSize(strings.NewReader(line+"\n"), 16)
	if got, err := readFrame(r, 40); err != nil || string(got) != line {
		t.Fatalf("line at limit: %q, %v", got, err)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("a\nb\n"), 4)
	f.Add([]byte("\n\n\n"), 0)
	f.Add([]byte(strings.Repeat("z", 100)+"\n"), 50)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		r := bufio.NewReaderSize(bytes.NewReader(in), 16)
		var lines [][]byte
		for {
			line, err := readFrame(r, max)
			if err != nil {
				break
			}
			if len(line) > max || bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("frame %q breaks the limit %d or contains a newline", line, max)
			}
			lines = append(lines, line)
		}
		// Whatever was read is a prefix of the input's lines.
		want := bytes.Split(in, []byte("\n"))
		for i, l := range lines {
			if !bytes.Equal(l, want[i]) {
				t.Fatalf("line %d = %q, want %q", i, l, want[i])
			}
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"method":"send","params":{"group":"g","text":"t"}}`,
		`{"id":2,"cancel":true}`,
		`{"id":3,"credit":32}`,
		`{"id":0}`, `null`, `{"id":1,"method":"x","credit":1}`, `{"id":18446744073709551615,"method":"status"}`,
		`{"id":1,"method":"status"}{}`, `{"id":1.5}`, `"str"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := decodeRequest(line)
		if err != nil {
			return
		}
		// A valid request re-encodes to one that decodes to the same value.
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := decodeRequest(b)
		if err != nil {
			t.Fatalf("re-encoded %q: %v", b, err)
		}
		if req.ID != req2.ID || req.Method != req2.Method || req.Cancel != req2.Cancel || req.Credit != req2.Credit {
			t.Fatalf("%+v != %+v", req, req2)
		}
		if len(req.Params) > 0 {
			var a, b any
			if json.Unmarshal(req.Params, &a) != nil || json.Unmarshal(req2.Params, &b) != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("params changed: %s -> %s", req.Params, req2.Params)
			}
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"id":1,"result":{"a":1},"done":true}`))
	f.Add([]byte(`{"id":1,"error":{"code":"forbidden","message":"no"},"done":true}`))
	f.Add([]byte(`{"id":1,"error":{"code":"x"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		resp, err := decodeResponse(line)
		if err != nil {
			return
		}
		if resp.ID == 0 || (resp.Error != nil && !resp.Done) {
			t.Fatalf("accepted invalid response %+v", resp)
		}
	})
}

// zeroService answers every call with zero values; Subscribe's channel ends
// with the call.
type zeroService struct{}

func (zeroService) Status(context.Context) (Status, error)                { return Status{}, nil }
func (zeroService) CreateGroup(context.Context, string) (Group, error)    { return Group{}, nil }
func (zeroService) Groups(context.Context) ([]Group, error)               { return nil, nil }
func (zeroService) Invite(context.Context, string) (Invite, error)        { return Invite{}, nil }
func (zeroService) Join(context.Context, string) (Group, error)           { return Group{}, nil }
func (zeroService) Send(context.Context, string, string) (Message, error) { return Message{}, nil }
func (zeroService) Log(context.Context, string, int) ([]Message, error)   { return nil, nil }
func (zeroService) Search(context.Context, SearchRequest) (SearchResult, error) {
	return SearchResult{}, nil
}
func (zeroService) Members(context.Context, string) ([]Member, error) { return nil, nil }
func (zeroService) Remove(context.Context, string, string) error      { return nil }
func (zeroService) Rotate(context.Context, string) error              { return nil }
func (zeroService) RequestChange(context.Context, ChangeRequest) (Change, error) {
	return Change{}, nil
}
func (zeroService) AwaitChange(context.Context, string, string, time.Duration) (Change, error) {
	return Change{}, nil
}
func (zeroService) MarkRead(context.Context, string) error { return nil }
func (zeroService) Leave(context.Context, string) error    { return nil }
func (zeroService) Peers(context.Context) ([]Peer, error)  { return nil, nil }
func (zeroService) InviteWith(context.Context, InviteRequest) (Invite, error) {
	return Invite{}, nil
}
func (zeroService) Invites(context.Context) ([]InviteInfo, error)     { return nil, nil }
func (zeroService) RevokeInvite(context.Context, string) error        { return nil }
func (zeroService) ConnectPeer(context.Context, string) (Peer, error) { return Peer{}, nil }
func (zeroService) Export(ctx context.Context, _ string, _ time.Time, fn func(Message) error) error {
	for range 3 {
		if err := fn(Message{Text: "x"}); err != nil {
			return err
		}
	}
	return nil
}
func (zeroService) Subscribe(ctx context.Context) (<-chan Event, error) {
	ch := make(chan Event)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

// FuzzServe feeds arbitrary bytes to a server connection: every frame it
// answers with must be a well-formed response, and it must neither crash
// nor hang.
func FuzzServe(f *testing.F) {
	f.Add([]byte(`{"id":1,"method":"status"}` + "\n"))
	f.Add([]byte(`{"id":1,"method":"export","params":{"group":"g"}}` + "\n" + `{"id":1,"credit":64}` + "\n"))
	f.Add([]byte(`{"id":1,"method":"subscribe"}` + "\n" + `{"id":1,"cancel":true}` + "\n"))
	f.Add([]byte("garbage\n{\n}\n"))
	f.Add([]byte(`{"id":2,"method":"send","params":{"group":"g","text":"t"}}` + "\n" + `{"id":2,"method":"send"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		s := &serverConn{conn: server, svc: zeroService{}, log: slog.New(slog.DiscardHandler), calls: make(map[uint64]*serverCall)}
		served := make(chan struct{})
		go func() { defer close(served); s.serve(context.Background()) }()

		// Read every frame the server sends until it closes or answers
		// the sentinel call.
		const sentinel = 1 << 62
		read := make(chan error, 1)
		go func() {
			r := bufio.NewReader(client)
			for {
				line, err := r.ReadBytes('\n')
				if err != nil {
					read <- nil
					return
				}
				var resp response
				if err := json.Unmarshal(line, &resp); err != nil {
					read <- err
					return
				}
				if resp.Error != nil && (!resp.Done || resp.Error.Message == "") {
					read <- errors.New("bad error frame " + string(line))
					return
				}
				if resp.ID == sentinel {
					read <- nil
					return
				}
			}
		}()
		client.SetWriteDeadline(time.Now().Add(10 * time.Second))
		client.Write(in)
		client.Write([]byte("\n{\"id\":4611686018427387904,\"method\":\"status\"}\n"))
		select {
		case err := <-read:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("server did not answer")
		}
		client.Close()
		<-served
	})
}

// FuzzClient feeds arbitrary server bytes to a client in the middle of a
// unary call, a stream and a subscription: it must return errors, never
// panic or hang.
func FuzzClient(f *testing.F) {
	f.Add([]byte(`{"id":1,"result":{"name":"a"},"done":true}` + "\n"))
	f.Add([]byte(`{"id":2,"result":{"text":"x"}}` + "\n" + `{"id":2,"done":true}` + "\n"))
	f.Add([]byte(`{"id":3,"result":{}}` + "\n" + `{"id":3,"result":{"kind":"message"}}` + "\n"))
	f.Add([]byte(`{"id":1,"error":{"code":"forbidden","message":"no"},"done":true}` + "\n"))
	f.Add([]byte(`{"id":9,"result":1}` + "\n" + "garbage\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		c := NewClient(client)
		// The fake server drains requests and answers with the input.
		go func() {
			go io.Copy(io.Discard, server)
			server.Write(in)
			server.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		wg.Go(func() { c.Status(ctx) })
		wg.Go(func() { c.Export(ctx, "g", time.Time{}, func(Message) error { return nil }) })
		wg.Go(func() {
			if ch, err := c.Subscribe(ctx); err == nil {
				for range ch {
				}
			}
		})
		wg.Wait()
		c.Close()
	})
}
