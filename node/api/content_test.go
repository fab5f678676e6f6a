package api_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"grove/node/api"
	"grove/node/api/apitest"
)

// convService answers the conversation calls with what it was asked.
type convService struct {
	*apitest.Fake
	got []any
}

func (c *convService) Post(ctx context.Context, req api.PostRequest) (api.Message, error) {
	c.got = append(c.got, req)
	return api.Message{ID: "p", Text: req.Text, ReplyTo: req.ReplyTo, Kind: api.KindFile,
		File: &api.File{ID: "p", Name: "a.bin", Size: 3, Hash: "ab"}}, nil
}

func (c *convService) React(ctx context.Context, req api.ReactRequest) (api.Message, error) {
	c.got = append(c.got, req)
	return api.Message{ID: req.ID, Reactions: []api.Reaction{{Emoji: req.Emoji, Count: 1, By: []string{"me"}, Own: true}}}, nil
}

func (c *convService) Edit(ctx context.Context, group, id, text string) (api.Message, error) {
	c.got = append(c.got, []string{"edit", group, id, text})
	return api.Message{ID: id, Text: text, Edited: true}, nil
}

func (c *convService) Delete(ctx context.Context, group, id string) (api.Message, error) {
	c.got = append(c.got, []string{"delete", group, id})
	return api.Message{}, api.Errorf(api.CodeForbidden, "only its author or an admin can delete a message")
}

func (c *convService) Typing(ctx context.Context, group string) error {
	c.got = append(c.got, []string{"typing", group})
	return nil
}

func (c *convService) SetReceipts(ctx context.Context, on bool) error {
	c.got = append(c.got, on)
	return nil
}

func (c *convService) Files(ctx context.Context, group string) ([]api.File, error) {
	c.got = append(c.got, []string{"files", group})
	return nil, nil
}

func (c *convService) SaveFile(ctx context.Context, req api.SaveRequest) (api.File, error) {
	c.got = append(c.got, req)
	return api.File{ID: req.File, Saved: req.Path}, nil
}

// TestConversationsOverTheSocket: every conversation call crosses the
// socket with its arguments and comes back with its result or typed
// error; a service without them answers CodeUnavailable.
func TestConversationsOverTheSocket(t *testing.T) {
	svc := &convService{Fake: apitest.New("alice")}
	c := setup(t, svc)
	ctx := context.Background()
	m, err := c.Post(ctx, api.PostRequest{Group: "ops", Text: "see file", ReplyTo: "r", File: "/tmp/a.bin"})
	if err != nil || m.File == nil || m.File.Name != "a.bin" || m.ReplyTo != "r" || m.Kind != api.KindFile {
		t.Fatalf("post: %+v %v", m, err)
	}
	if m, err := c.React(ctx, api.ReactRequest{Group: "ops", ID: "x", Emoji: "👍", Remove: true}); err != nil || len(m.Reactions) != 1 || !m.Reactions[0].Own {
		t.Fatalf("react: %+v %v", m, err)
	}
	if m, err := c.Edit(ctx, "ops", "x", "new"); err != nil || !m.Edited || m.Text != "new" {
		t.Fatalf("edit: %+v %v", m, err)
	}
	if _, err := c.Delete(ctx, "ops", "x"); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("delete: %v", err)
	}
	if err := c.Typing(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReceipts(ctx, false); err != nil {
		t.Fatal(err)
	}
	if fs, err := c.Files(ctx, "ops"); err != nil || fs == nil || len(fs) != 0 {
		t.Fatalf("files: %#v %v", fs, err)
	}
	if f, err := c.SaveFile(ctx, api.SaveRequest{Group: "ops", File: "p", Path: "/tmp/out"}); err != nil || f.Saved != "/tmp/out" {
		t.Fatalf("save: %+v %v", f, err)
	}
	want := []any{
		api.PostRequest{Group: "ops", Text: "see file", ReplyTo: "r", File: "/tmp/a.bin"},
		api.ReactRequest{Group: "ops", ID: "x", Emoji: "👍", Remove: true},
		[]string{"edit", "ops", "x", "new"},
		[]string{"delete", "ops", "x"},
		[]string{"typing", "ops"},
		false,
		[]string{"files", "ops"},
		api.SaveRequest{Group: "ops", File: "p", Path: "/tmp/out"},
	}
	if !reflect.DeepEqual(svc.got, want) {
		t.Fatalf("service got %#v", svc.got)
	}

	plain := dial(t, serve(t, apitest.New("bob")))
	if _, err := plain.Edit(ctx, "ops", "x", "y"); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("edit on a service without conversations: %v", err)
	}
}
