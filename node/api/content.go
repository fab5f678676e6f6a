package api

import (
	"context"
	"encoding/json"
	"time"
)

// Conversations is the part of the local API beyond plain text (issue 21):
// replies, reactions, edits, deletes, files, read receipts, typing. A
// Service that also implements it (the node, the Client) serves these
// calls; for any other the server answers CodeUnavailable.
type Conversations interface {
	// Post sends a message as req describes: text, optionally replying to
	// a message and carrying a file.
	Post(ctx context.Context, req PostRequest) (Message, error)
	// React adds (or, with Remove, removes) an emoji on a message and
	// returns the message as it is now.
	React(ctx context.Context, req ReactRequest) (Message, error)
	// Edit replaces the text of one of this device's messages.
	Edit(ctx context.Context, group, id, text string) (Message, error)
	// Delete deletes a message for everyone: one of this device's, or
	// any as an admin. Its text is purged from every member's device.
	Delete(ctx context.Context, group, id string) (Message, error)
	// Typing tells the other members that this device's user is typing.
	// Nothing of it is stored or sent again.
	Typing(ctx context.Context, group string) error
	// SetReceipts turns sending read receipts on or off for this device.
	SetReceipts(ctx context.Context, on bool) error
	// Files lists the files sent in group.
	Files(ctx context.Context, group string) ([]File, error)
	// SaveFile fetches a file (from the members that hold it) if needed,
	// checks it and writes it to req.Path.
	SaveFile(ctx context.Context, req SaveRequest) (File, error)
}

// MessageKind says what a message is.
type MessageKind string

// Message kinds. An empty kind is plain text.
const (
	KindText MessageKind = "text"
	KindFile MessageKind = "file"
	// KindDeleted: deleted for everyone; the text is gone.
	KindDeleted MessageKind = "deleted"
	// KindUnsupported: sent by a newer device in a form this one does not
	// know.
	KindUnsupported MessageKind = "unsupported"
)

// Conversation event kinds.
const (
	// EventMessageUpdated: a message was edited, deleted, reacted to or
	// read; Message holds it as it is now.
	EventMessageUpdated EventKind = "message_updated"
	// EventTyping: Member is typing in Group.
	EventTyping EventKind = "typing"
	// EventFileProgress: a file transfer advanced; Detail says how far.
	EventFileProgress EventKind = "file_progress"
)

// Reaction is one emoji on a message and who put it there.
type Reaction struct {
	Emoji string   `json:"emoji"`
	Count int      `json:"count"`
	By    []string `json:"by"`
	Own   bool     `json:"own,omitempty"`
}

// File describes a file sent in a group.
type File struct {
	ID     string    `json:"id"` // the id of the message that carries it
	Group  string    `json:"group,omitempty"`
	Name   string    `json:"name"`
	Size   int64     `json:"size"`
	Type   string    `json:"type,omitempty"`
	Hash   string    `json:"sha256"`
	Sender string    `json:"sender,omitempty"`
	Have   int64     `json:"have"` // bytes of it held on this device
	Saved  string    `json:"saved,omitempty"`
	Time   time.Time `json:"time,omitzero"`
	// Width and Height: the size of a picture, as its sender read it;
	// Preview: a thumbnail of it (at most 160 pixels a side) as a
	// data: URL, checked to decode.
	Width   int    `json:"width,omitempty"`
	Height  int    `json:"height,omitempty"`
	Preview string `json:"preview,omitempty"`
}

// PostRequest asks Post to send a message.
type PostRequest struct {
	Group   string `json:"group"`
	Text    string `json:"text,omitempty"`
	ReplyTo string `json:"reply_to,omitempty"` // message id (hex)
	// File is the path of a file to send, read by the daemon.
	File string `json:"file,omitempty"`
}

// ReactRequest asks React to add or remove an emoji.
type ReactRequest struct {
	Group  string `json:"group"`
	ID     string `json:"id"`
	Emoji  string `json:"emoji"`
	Remove bool   `json:"remove,omitempty"`
}

// SaveRequest asks SaveFile to write a file.
type SaveRequest struct {
	Group string `json:"group"`
	File  string `json:"file"` // File.ID, or a unique prefix of it
	Path  string `json:"path"`
}

const (
	methodPost        = "post"
	methodReact       = "react"
	methodEdit        = "edit"
	methodDelete      = "delete"
	methodTyping      = "typing"
	methodSetReceipts = "set_receipts"
	methodFiles       = "files"
	methodSaveFile    = "save_file"
)

type editParams struct {
	Group string `json:"group"`
	ID    string `json:"id"`
	Text  string `json:"text,omitempty"`
}

type receiptsParams struct {
	On bool `json:"on"`
}

var _ Conversations = (*Client)(nil)

func init() {
	// Registered here rather than in server.go's table so that this
	// additive part of the API stays in one file.
	conv := func(fn func(ctx context.Context, c Conversations, raw json.RawMessage) (any, error)) handler {
		return handler{fn: func(ctx context.Context, svc Service, raw json.RawMessage, _ *stream) (any, error) {
			c, ok := svc.(Conversations)
			if !ok {
				return nil, Errorf(CodeUnavailable, "this daemon does not support replies, reactions, edits or files")
			}
			return fn(ctx, c, raw)
		}}
	}
	handlers[methodPost] = conv(func(ctx context.Context, c Conversations, raw json.RawMessage) (any, error) {
		var p PostRequest
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return c.Post(ctx, p)
	})
	handlers[methodReact] = conv(func(ctx context.Context, c Conversations, raw json.RawMessage) (any, error) {
		var p ReactRequest
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return c.React(ctx, p)
	})
	handlers[methodEdit] = conv(func(ctx context.Context, c Conversations, raw json.RawMessage) (any, error) {
		var p editParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return c.Edit(ctx, p.Group, p.ID, p.Text)
	})
	handlers[methodDelete] = conv(func(ctx context.Context, c Conversations, raw json.RawMessage) (any, error) {
		var p editParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return c.Delete(ctx, p.Group, p.ID)
	})
	handlers[methodTyping] = conv(func(ctx context.Context, c Conversations, raw json.RawMessage) (any, error) {
		var p groupParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return nil, c.Typing(ctx, p.Group)
	})
	handlers[methodSetReceipts] = conv(func(ctx context.Context, c Conversations, raw json.RawMessage) (any, error) {
		var p receiptsParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return nil, c.SetReceipts(ctx, p.On)
	})
	handlers[methodFiles] = conv(func(ctx context.Context, c Conversations, raw json.RawMessage) (any, error) {
		var p groupParams
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		fs, err := c.Files(ctx, p.Group)
		return nonNil(fs), err
	})
	handlers[methodSaveFile] = conv(func(ctx context.Context, c Conversations, raw json.RawMessage) (any, error) {
		var p SaveRequest
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		return c.SaveFile(ctx, p)
	})
}

func (c *Client) Post(ctx context.Context, req PostRequest) (Message, error) {
	var m Message
	err := c.call(ctx, methodPost, req, &m)
	return m, err
}

func (c *Client) React(ctx context.Context, req ReactRequest) (Message, error) {
	var m Message
	err := c.call(ctx, methodReact, req, &m)
	return m, err
}

func (c *Client) Edit(ctx context.Context, group, id, text string) (Message, error) {
	var m Message
	err := c.call(ctx, methodEdit, editParams{Group: group, ID: id, Text: text}, &m)
	return m, err
}

func (c *Client) Delete(ctx context.Context, group, id string) (Message, error) {
	var m Message
	err := c.call(ctx, methodDelete, editParams{Group: group, ID: id}, &m)
	return m, err
}

func (c *Client) Typing(ctx context.Context, group string) error {
	return c.call(ctx, methodTyping, groupParams{Group: group}, nil)
}

func (c *Client) SetReceipts(ctx context.Context, on bool) error {
	return c.call(ctx, methodSetReceipts, receiptsParams{On: on}, nil)
}

func (c *Client) Files(ctx context.Context, group string) ([]File, error) {
	var fs []File
	err := c.call(ctx, methodFiles, groupParams{Group: group}, &fs)
	return fs, err
}

func (c *Client) SaveFile(ctx context.Context, req SaveRequest) (File, error) {
	var f File
	err := c.call(ctx, methodSaveFile, req, &f)
	return f, err
}
