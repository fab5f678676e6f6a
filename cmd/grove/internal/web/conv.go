package web

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"grove/node/api"
)

// saveTimeout bounds a file download's fetch from the members that hold
// it.
const saveTimeout = 5 * time.Minute

// conv returns the device's conversation API (replies, reactions, edits,
// deletes, files, typing), or an error a person understands.
func (s *Server) conv() (api.Conversations, error) {
	c, ok := s.svc.(api.Conversations)
	if !ok {
		return nil, api.Errorf(api.CodeUnavailable, "this daemon does not support replies, reactions, edits or files")
	}
	return c, nil
}

// convRoutes registers the endpoints beyond plain text (docs/API.md).
func (s *Server) convRoutes() {
	s.handle("POST /api/groups/{group}/messages/{id}/react", func(r *http.Request) (any, error) {
		var p struct {
			Emoji  string `json:"emoji"`
			Remove bool   `json:"remove,omitempty"`
		}
		if err := decode(r, &p); err != nil {
			return nil, err
		}
		c, err := s.conv()
		if err != nil {
			return nil, err
		}
		return c.React(r.Context(), api.ReactRequest{Group: r.PathValue("group"), ID: r.PathValue("id"), Emoji: p.Emoji, Remove: p.Remove})
	})
	s.handle("POST /api/groups/{group}/messages/{id}/edit", func(r *http.Request) (any, error) {
		var p struct {
			Text string `json:"text"`
		}
		if err := decode(r, &p); err != nil {
			return nil, err
		}
		c, err := s.conv()
		if err != nil {
			return nil, err
		}
		return c.Edit(r.Context(), r.PathValue("group"), r.PathValue("id"), p.Text)
	})
	s.handle("DELETE /api/groups/{group}/messages/{id}", func(r *http.Request) (any, error) {
		c, err := s.conv()
		if err != nil {
			return nil, err
		}
		return c.Delete(r.Context(), r.PathValue("group"), r.PathValue("id"))
	})
	s.handle("POST /api/groups/{group}/typing", func(r *http.Request) (any, error) {
		c, err := s.conv()
		if err != nil {
			return nil, err
		}
		return nil, c.Typing(r.Context(), r.PathValue("group"))
	})
	s.handle("GET /api/groups/{group}/files", func(r *http.Request) (any, error) {
		c, err := s.conv()
		if err != nil {
			return nil, err
		}
		fs, err := c.Files(r.Context(), r.PathValue("group"))
		return nonNil(fs), err
	})
	s.mux.HandleFunc("GET /api/groups/{group}/files/{id}", s.download)
}

// postMessage sends a message: through Post when it replies to one or
// may mention a member (Post resolves @names), otherwise through Send,
// which also says whether the message waits for a reachable member.
func (s *Server) postMessage(r *http.Request) (any, error) {
	var p struct {
		Text    string `json:"text"`
		ReplyTo string `json:"reply_to,omitempty"`
	}
	if err := decode(r, &p); err != nil {
		return nil, err
	}
	group := r.PathValue("group")
	if p.ReplyTo == "" && !strings.Contains(p.Text, "@") {
		return s.svc.Send(r.Context(), group, p.Text)
	}
	c, ok := s.svc.(api.Conversations)
	if !ok {
		if p.ReplyTo != "" {
			_, err := s.conv()
			return nil, err
		}
		return s.svc.Send(r.Context(), group, p.Text)
	}
	return c.Post(r.Context(), api.PostRequest{Group: group, Text: p.Text, ReplyTo: p.ReplyTo})
}

// download streams a file of a group to the signed-in page: the daemon
// fetches it if needed and writes it into a private temporary directory
// (SaveFile checks it against its hash), from which it is sent and then
// removed. It is sent as an attachment of no particular type, so that a
// browser never renders what a member sent.
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	c, err := s.conv()
	if err != nil {
		writeError(w, err)
		return
	}
	dir, err := os.MkdirTemp("", "grove-web-")
	if err != nil {
		writeError(w, api.Errorf(api.CodeInternal, "download: %v", err))
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "file")
	ctx, cancel := context.WithTimeout(r.Context(), saveTimeout)
	defer cancel()
	f, err := c.SaveFile(ctx, api.SaveRequest{Group: r.PathValue("group"), File: r.PathValue("id"), Path: path})
	if err != nil {
		writeError(w, err)
		return
	}
	fh, err := os.Open(path)
	if err != nil {
		writeError(w, api.Errorf(api.CodeInternal, "download %s: %v", f.Name, err))
		return
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		writeError(w, api.Errorf(api.CodeInternal, "download %s: %v", f.Name, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", attachment(f.Name))
	h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, fh); err != nil {
		s.log.Debug("web: download cut short", "file", f.ID, "err", err)
	}
}

// attachment is a Content-Disposition for a file a member named: the
// name loses path separators and control characters, and is encoded by
// the mime package however odd it is.
func attachment(name string) string {
	clean := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || unicode.IsControl(r) {
			return '_'
		}
		return r
	}, name)
	if clean == "" || clean == "." || clean == ".." {
		clean = "file"
	}
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": clean}); v != "" {
		return v
	}
	return fmt.Sprintf("attachment; filename=%q", "file")
}
