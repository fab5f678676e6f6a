package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"grove/node/api"
)

// Conversation commands (issue 21): react, edit, delete, files, save,
// receipts; send's --reply and --file go through post.

// post sends a reply or a file (send --reply / --file).
func (e *env) post(c *api.Client, req api.PostRequest, asJSON bool) error {
	if req.File != "" {
		abs, err := filepath.Abs(req.File)
		if err != nil {
			return fmt.Errorf("send: %w", err)
		}
		req.File = abs // the daemon's working directory is not ours
	}
	m, err := c.Post(e.ctx, req)
	switch {
	case err != nil:
		return err
	case asJSON:
		return e.json(m)
	case m.Queued:
		fmt.Fprintln(e.stdout, "queued: no member reachable")
	}
	return nil
}

func (e *env) cmdReact(args []string) error {
	f := e.flags("react")
	asJSON := f.Bool("json", false, "")
	remove := f.Bool("remove", false, "")
	pos, err := f.parse(args, 3, 3)
	if err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		m, err := c.React(e.ctx, api.ReactRequest{Group: pos[0], ID: pos[1], Emoji: pos[2], Remove: *remove})
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(m)
		}
		return nil
	})
}

func (e *env) cmdEdit(args []string) error {
	f := e.flags("edit")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 3, 3)
	if err != nil {
		return err
	}
	if strings.TrimSpace(pos[2]) == "" {
		return usagef("edit: empty message (delete it instead)")
	}
	return e.withClient(func(c *api.Client) error {
		m, err := c.Edit(e.ctx, pos[0], pos[1], pos[2])
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(m)
		}
		return nil
	})
}

func (e *env) cmdDelete(args []string) error {
	f := e.flags("delete")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 2, 2)
	if err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		m, err := c.Delete(e.ctx, pos[0], pos[1])
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(m)
		}
		return nil
	})
}

func (e *env) cmdFiles(args []string) error {
	f := e.flags("files")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return e.withClient(func(c *api.Client) error {
		fs, err := c.Files(e.ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(orEmpty(fs))
		}
		if len(fs) == 0 {
			fmt.Fprintln(e.stdout, "no files")
			return nil
		}
		t := &table{}
		t.row("ID", "NAME", "SIZE", "FROM", "HERE")
		for _, fl := range fs {
			here := fmt.Sprintf("%d%%", percent(fl.Have, fl.Size))
			t.row(fl.ID[:12], sanitize(fl.Name), byteSize(fl.Size), sanitize(fl.Sender), here)
		}
		t.write(e.stdout)
		return nil
	})
}

func (e *env) cmdSave(args []string) error {
	f := e.flags("save")
	asJSON := f.Bool("json", false, "")
	pos, err := f.parse(args, 3, 3)
	if err != nil {
		return err
	}
	path, err := filepath.Abs(pos[2])
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return e.withClient(func(c *api.Client) error {
		fl, err := c.SaveFile(e.ctx, api.SaveRequest{Group: pos[0], File: pos[1], Path: path})
		if err != nil {
			return err
		}
		if *asJSON {
			return e.json(fl)
		}
		fmt.Fprintf(e.stdout, "saved %s (%s, sha256 %s)\n", sanitize(fl.Saved), byteSize(fl.Size), fl.Hash)
		return nil
	})
}

func (e *env) cmdReceipts(args []string) error {
	f := e.flags("receipts")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	var on bool
	switch pos[0] {
	case "on":
		on = true
	case "off":
	default:
		return usagef("receipts: say on or off")
	}
	return e.withClient(func(c *api.Client) error { return c.SetReceipts(e.ctx, on) })
}

// conversationMarks is what log shows of a message beyond its text.
func conversationMarks(m api.Message, text string) string {
	switch m.Kind {
	case api.KindDeleted:
		return "(deleted)"
	case api.KindUnsupported:
		return "(unsupported message: a newer grove sent it)"
	}
	if m.File != nil {
		f := fmt.Sprintf("[file %s, %s, id %.12s]", sanitize(m.File.Name), byteSize(m.File.Size), m.File.ID)
		if m.File.Width > 0 && m.File.Height > 0 {
			f = fmt.Sprintf("[image %d×%d] %s", m.File.Width, m.File.Height, f)
		}
		if text == "" {
			text = f
		} else {
			text = f + " " + text
		}
	}
	if m.ReplyTo != "" {
		text = fmt.Sprintf("(reply to %.8s) %s", m.ReplyTo, text)
	}
	if m.Edited {
		text += " (edited)"
	}
	for _, r := range m.Reactions {
		text += fmt.Sprintf(" [%s %d]", sanitize(r.Emoji), r.Count)
	}
	if len(m.SeenBy) > 0 {
		text += fmt.Sprintf(" (seen by %d)", len(m.SeenBy))
	}
	return text
}

func percent(have, size int64) int64 {
	if size <= 0 {
		return 100
	}
	return have * 100 / size
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// The served daemon forwards the conversation calls to a daemon that
// implements them (the node does); api.Serve finds them on the Service it
// is given.
var _ api.Conversations = (*servedDaemon)(nil)

func (s *servedDaemon) conv() (api.Conversations, error) {
	c, ok := s.Daemon.(api.Conversations)
	if !ok {
		return nil, api.Errorf(api.CodeUnavailable, "this daemon does not support replies, reactions, edits or files")
	}
	return c, nil
}

func (s *servedDaemon) Post(ctx context.Context, req api.PostRequest) (api.Message, error) {
	c, err := s.conv()
	if err != nil {
		return api.Message{}, err
	}
	return c.Post(ctx, req)
}

func (s *servedDaemon) React(ctx context.Context, req api.ReactRequest) (api.Message, error) {
	c, err := s.conv()
	if err != nil {
		return api.Message{}, err
	}
	return c.React(ctx, req)
}

func (s *servedDaemon) Edit(ctx context.Context, group, id, text string) (api.Message, error) {
	c, err := s.conv()
	if err != nil {
		return api.Message{}, err
	}
	return c.Edit(ctx, group, id, text)
}

func (s *servedDaemon) Delete(ctx context.Context, group, id string) (api.Message, error) {
	c, err := s.conv()
	if err != nil {
		return api.Message{}, err
	}
	return c.Delete(ctx, group, id)
}

func (s *servedDaemon) Typing(ctx context.Context, group string) error {
	c, err := s.conv()
	if err != nil {
		return err
	}
	return c.Typing(ctx, group)
}

func (s *servedDaemon) SetReceipts(ctx context.Context, on bool) error {
	c, err := s.conv()
	if err != nil {
		return err
	}
	return c.SetReceipts(ctx, on)
}

func (s *servedDaemon) Files(ctx context.Context, group string) ([]api.File, error) {
	c, err := s.conv()
	if err != nil {
		return nil, err
	}
	return c.Files(ctx, group)
}

func (s *servedDaemon) SaveFile(ctx context.Context, req api.SaveRequest) (api.File, error) {
	c, err := s.conv()
	if err != nil {
		return api.File{}, err
	}
	return c.SaveFile(ctx, req)
}
