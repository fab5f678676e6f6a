package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// The wire protocol is newline-delimited JSON over a stream socket.
//
// A client sends requests:
//
//	{"id":7,"method":"send","params":{"group":"ops","text":"hi"}}
//
// and control frames for a call in flight:
//
//	{"id":7,"cancel":true}   stop call 7 (its context is cancelled)
//	{"id":7,"credit":32}     call 7 may send 32 more stream items
//
// The server answers each call with zero or more item frames followed by one
// final frame carrying "done":true and either a result or an error:
//
//	{"id":7,"result":{...},"done":true}
//	{"id":7,"error":{"code":"forbidden","message":"..."},"done":true}
//
// Streaming calls (export, subscribe) send items as {"id":7,"result":{...}};
// the server never has more than the granted credit of items unacknowledged,
// so a slow consumer stalls only its own call, never the connection.
// Requests are answered independently and may complete out of order.

// Frame size limits. A request carries at most one message text, so it is
// small; a response may carry a page of messages.
const (
	maxRequestFrame  = 1 << 20
	maxResponseFrame = 32 << 20
	// streamWindow is the number of stream items a server may send before
	// the client grants more credit.
	streamWindow = 64
	// maxCallsPerConn bounds the calls one connection may have in flight.
	maxCallsPerConn = 128
)

// Method names on the wire.
const (
	methodStatus      = "status"
	methodCreateGroup = "create_group"
	methodGroups      = "groups"
	methodInvite      = "invite"
	methodJoin        = "join"
	methodSend        = "send"
	methodLog         = "log"
	methodSearch      = "search"
	methodMembers     = "members"
	methodRemove      = "remove"
	methodRotate      = "rotate"
	methodMarkRead    = "mark_read"
	methodLeave       = "leave"
	methodPeers       = "peers"
	methodExport      = "export"
	methodSubscribe   = "subscribe"
	methodRequest     = "request_change"
	methodAwait       = "await_change"
	methodConnect     = "connect"
	methodShutdown    = "shutdown"
	methodInviteWith  = "invite_with"
	methodInvites     = "invites"
	methodRevoke      = "revoke_invite"
	methodWebLogin    = "web_login"
)

// errFrameTooLarge reports a line longer than the reader's limit; the
// connection cannot be resynchronised cheaply and is closed.
var errFrameTooLarge = errors.New("api: frame too large")

// request is a client-to-server frame: a call or a control frame.
type request struct {
	ID     uint64          `json:"id"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Cancel bool            `json:"cancel,omitempty"`
	Credit int             `json:"credit,omitempty"`
}

// response is a server-to-client frame.
type response struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
	Done   bool            `json:"done,omitempty"`
}

// Parameter objects, one per method that takes arguments.
type (
	nameParams struct {
		Name string `json:"name"`
	}
	groupParams struct {
		Group string `json:"group"`
	}
	codeParams struct {
		Code string `json:"code"`
	}
	sendParams struct {
		Group string `json:"group"`
		Text  string `json:"text"`
	}
	logParams struct {
		Group string `json:"group"`
		Limit int    `json:"limit,omitempty"`
	}
	memberParams struct {
		Group  string `json:"group"`
		Member string `json:"member"`
	}
	awaitParams struct {
		Group   string        `json:"group"`
		ID      string        `json:"id"`
		Timeout time.Duration `json:"timeout"` // nanoseconds
	}
	idParams struct {
		ID string `json:"id"`
	}
	addrParams struct {
		Addr string `json:"addr"`
	}
	exportParams struct {
		Group string    `json:"group"`
		Since time.Time `json:"since,omitzero"`
	}
)

// readFrame reads one newline-terminated frame of at most max bytes
// (excluding the newline). It returns errFrameTooLarge for longer lines and
// io.EOF (or io.ErrUnexpectedEOF for a partial line) at the end of input.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			return nil, errFrameTooLarge
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// decodeRequest parses and checks one request frame. It returns the id it
// could read even when the frame is otherwise invalid, so that the error can
// be answered to the right call.
func decodeRequest(line []byte) (request, error) {
	var req request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return request{ID: req.ID}, fmt.Errorf("api: malformed request: %w", err)
	}
	if dec.More() {
		return request{ID: req.ID}, errors.New("api: malformed request: trailing data")
	}
	if req.ID == 0 {
		return req, errors.New("api: request without id")
	}
	control := 0
	if req.Method != "" {
		control++
	}
	if req.Cancel {
		control++
	}
	if req.Credit != 0 {
		control++
	}
	if control != 1 {
		return req, errors.New("api: request must have exactly one of method, cancel, credit")
	}
	if req.Credit < 0 || req.Credit > streamWindow {
		return req, fmt.Errorf("api: credit %d out of range", req.Credit)
	}
	if req.Method == "" && len(req.Params) > 0 {
		return req, errors.New("api: control frame with params")
	}
	return req, nil
}

// decodeResponse parses one response frame.
func decodeResponse(line []byte) (response, error) {
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return response{}, fmt.Errorf("api: malformed response: %w", err)
	}
	if resp.ID == 0 {
		return response{}, errors.New("api: response without id")
	}
	if resp.Error != nil && !resp.Done {
		return response{}, errors.New("api: error frame not final")
	}
	return resp, nil
}

// decodeParams unmarshals params strictly into v.
func decodeParams(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return Errorf(CodeInvalidArgument, "missing params")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeInvalidArgument, "bad params: %v", err)
	}
	return nil
}

// toWireError converts any error from a Service into the form sent on the
// wire: its code and its full message.
func toWireError(err error) *Error {
	return &Error{Code: CodeOf(err), Message: err.Error()}
}
