package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"grove/node/api"
)

// Limits of the JSON API.
const (
	maxBody      = 1 << 20 // a request carries at most one message text
	defaultPage  = 50
	maxPage      = 500
	joinTimeout  = 2 * time.Minute
	maxWait      = 60 * time.Second // a change's wait per request
	heartbeatGap = 20 * time.Second // a comment line keeps idle streams open
)

// handlerFunc is one API endpoint: it returns the value to send as JSON,
// or an error (an *api.Error chooses the status).
type handlerFunc func(r *http.Request) (any, error)

// handle registers an endpoint behind the origin, session and token checks.
func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if !s.allowed(w, r) {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		v, err := h(r)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// allowed applies the checks of every API request and answers refusals.
func (s *Server) allowed(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Set("Cache-Control", "no-store")
	if !s.auth.sameOrigin(r) {
		writeError(w, &httpError{http.StatusForbidden, "request from another origin refused"})
		return false
	}
	if status, why := s.auth.check(r); status != 0 {
		writeError(w, &httpError{status, why})
		return false
	}
	return true
}

// httpError is a refusal that is not a Service error.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if v == nil {
		v = struct{}{}
	}
	json.NewEncoder(w).Encode(v)
}

// writeError answers err as {"code": ..., "message": ...}.
func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	if errors.As(err, &he) {
		code := api.CodeForbidden
		switch he.status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			code = api.CodeInvalidArgument
		case http.StatusUnauthorized:
			code = "unauthenticated"
		}
		writeJSON(w, he.status, api.Error{Code: code, Message: he.msg})
		return
	}
	code := api.CodeOf(err)
	status := http.StatusInternalServerError
	switch code {
	case api.CodeInvalidArgument:
		status = http.StatusBadRequest
	case api.CodeNotFound:
		status = http.StatusNotFound
	case api.CodeForbidden:
		status = http.StatusForbidden
	case api.CodeConflict:
		status = http.StatusConflict
	case api.CodeUnavailable:
		status = http.StatusServiceUnavailable
	case api.CodeTimeout:
		status = http.StatusGatewayTimeout
	}
	writeJSON(w, status, api.Error{Code: code, Message: err.Error()})
}

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// decode reads a JSON body into v, rejecting unknown fields and trailing
// data.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &httpError{http.StatusRequestEntityTooLarge, "request too large"}
		}
		return badRequest("bad request body: %v", err)
	}
	if dec.More() {
		return badRequest("bad request body: trailing data")
	}
	return nil
}

func intParam(r *http.Request, name string, def, max int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, badRequest("%s must be 1..%d", name, max)
	}
	return n, nil
}

func (s *Server) apiRoutes() {
	// Signing in is the one API call without a session: it makes one.
	s.mux.HandleFunc("POST /api/login", s.login)
	s.handle("POST /api/logout", func(r *http.Request) (any, error) {
		s.auth.end(r)
		return nil, nil
	})
	s.handle("GET /api/status", func(r *http.Request) (any, error) { return s.svc.Status(r.Context()) })
	s.handle("GET /api/groups", func(r *http.Request) (any, error) {
		gs, err := s.svc.Groups(r.Context())
		return nonNil(gs), err
	})
	s.handle("POST /api/groups", func(r *http.Request) (any, error) {
		var p struct {
			Name string `json:"name"`
		}
		if err := decode(r, &p); err != nil {
			return nil, err
		}
		return s.svc.CreateGroup(r.Context(), p.Name)
	})
	s.handle("GET /api/groups/{group}/messages", s.messages)
	s.handle("POST /api/groups/{group}/messages", s.postMessage)
	s.convRoutes()   // conv.go
	s.deviceRoutes() // devices.go
	s.handle("POST /api/groups/{group}/read", func(r *http.Request) (any, error) {
		return nil, s.svc.MarkRead(r.Context(), r.PathValue("group"))
	})
	s.handle("GET /api/groups/{group}/members", func(r *http.Request) (any, error) {
		ms, err := s.svc.Members(r.Context(), r.PathValue("group"))
		return nonNil(ms), err
	})
	s.handle("POST /api/groups/{group}/remove", func(r *http.Request) (any, error) {
		var p struct {
			Member string `json:"member"`
		}
		if err := decode(r, &p); err != nil {
			return nil, err
		}
		return s.svc.RequestChange(r.Context(), api.ChangeRequest{Group: r.PathValue("group"), Kind: api.ChangeRemove, Member: p.Member})
	})
	s.handle("POST /api/groups/{group}/rotate", func(r *http.Request) (any, error) {
		return s.svc.RequestChange(r.Context(), api.ChangeRequest{Group: r.PathValue("group"), Kind: api.ChangeRotate})
	})
	s.handle("GET /api/groups/{group}/changes/{id}", func(r *http.Request) (any, error) {
		wait := time.Duration(0)
		if v := r.URL.Query().Get("wait"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > maxWait {
				return nil, badRequest("wait must be a duration up to %v", maxWait)
			}
			wait = d
		}
		return s.svc.AwaitChange(r.Context(), r.PathValue("group"), r.PathValue("id"), wait)
	})
	s.handle("POST /api/groups/{group}/leave", func(r *http.Request) (any, error) {
		return nil, s.svc.Leave(r.Context(), r.PathValue("group"))
	})
	s.handle("POST /api/groups/{group}/invites", s.invite)
	s.handle("GET /api/invites", func(r *http.Request) (any, error) {
		is, err := s.svc.Invites(r.Context())
		return nonNil(is), err
	})
	s.handle("DELETE /api/invites/{id}", func(r *http.Request) (any, error) {
		return nil, s.svc.RevokeInvite(r.Context(), r.PathValue("id"))
	})
	s.handle("POST /api/join", func(r *http.Request) (any, error) {
		var p struct {
			Code string `json:"code"`
		}
		if err := decode(r, &p); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(r.Context(), joinTimeout)
		defer cancel()
		return s.svc.Join(ctx, p.Code)
	})
	s.handle("GET /api/search", func(r *http.Request) (any, error) {
		q := r.URL.Query()
		limit, err := intParam(r, "limit", 20, 100)
		if err != nil {
			return nil, err
		}
		res, err := s.svc.Search(r.Context(), api.SearchRequest{Query: q.Get("q"), Group: q.Get("group"), Limit: limit, Cursor: q.Get("cursor")})
		res.Hits = nonNil(res.Hits)
		return res, err
	})
	s.handle("GET /api/peers", func(r *http.Request) (any, error) {
		ps, err := s.svc.Peers(r.Context())
		return nonNil(ps), err
	})
	s.mux.HandleFunc("GET /api/events", s.events)
	// Anything else under /api is an API error, not the client page.
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if s.allowed(w, r) {
			writeJSON(w, http.StatusNotFound, api.Error{Code: api.CodeNotFound, Message: "no such endpoint"})
		}
	})
}

// login redeems a one-time login token for a session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !s.auth.sameOrigin(r) {
		writeError(w, &httpError{http.StatusForbidden, "request from another origin refused"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	var p struct {
		Token string `json:"token"`
	}
	if err := decode(r, &p); err != nil {
		writeError(w, err)
		return
	}
	cookie, token, ok, err := s.auth.redeem(p.Token)
	if err != nil {
		writeError(w, err)
		return
	}
	if !ok {
		s.log.Info("web: sign-in with an unknown, used or expired link refused")
		writeError(w, &httpError{http.StatusUnauthorized, "this sign-in link was used or has expired: run grove gui for a new one"})
		return
	}
	http.SetCookie(w, s.auth.sessionCookie(cookie))
	writeJSON(w, http.StatusOK, struct {
		Token string `json:"token"`
	}{token})
}

// page is a window of a group's history, oldest first.
type page struct {
	Messages []api.Message `json:"messages"`
	// Older and Newer say whether history goes on beyond the window.
	Older bool `json:"older"`
	Newer bool `json:"newer"`
}

// messages returns the newest messages of a group, or a window next to a
// message: ?before=ID, ?after=ID or ?around=ID.
//
// The local API pages only from the newest message (Log), so a window
// further back asks Log for more, doubling, until the anchor is in reach.
// That costs work in proportion to how far back the anchor is, which
// scroll-back and search jumps accept.
func (s *Server) messages(r *http.Request) (any, error) {
	group := r.PathValue("group")
	limit, err := intParam(r, "limit", defaultPage, maxPage)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var mode, anchor string
	for _, m := range []string{"before", "after", "around"} {
		if v := q.Get(m); v != "" {
			if anchor != "" {
				return nil, badRequest("give one of before, after and around")
			}
			mode, anchor = m, v
		}
	}
	if anchor == "" {
		ms, err := s.svc.Log(r.Context(), group, limit)
		if err != nil {
			return nil, err
		}
		return page{Messages: nonNil(ms), Older: len(ms) == limit}, nil
	}
	for n := max(256, 2*limit); ; n *= 2 {
		ms, err := s.svc.Log(r.Context(), group, n)
		if err != nil {
			return nil, err
		}
		i := indexOf(ms, anchor)
		if i < 0 {
			if len(ms) < n {
				return nil, api.Errorf(api.CodeNotFound, "message %s is not in this group's history", anchor)
			}
			continue
		}
		need := 0 // older messages the window wants before the anchor
		switch mode {
		case "before":
			need = limit
		case "around":
			need = limit / 2
		}
		if i < need && len(ms) == n {
			continue // history goes on beyond what Log returned
		}
		lo, hi := i, i+1
		switch mode {
		case "before":
			lo, hi = max(0, i-limit), i
		case "after":
			lo, hi = i+1, min(len(ms), i+1+limit)
		case "around":
			lo, hi = max(0, i-limit/2), min(len(ms), i+1+limit/2)
		}
		return page{Messages: nonNil(ms[lo:hi]), Older: lo > 0 || len(ms) == n, Newer: hi < len(ms)}, nil
	}
}

func indexOf(ms []api.Message, id string) int {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].ID == id {
			return i
		}
	}
	return -1
}

// inviteAnswer is an invite code with its QR code.
type inviteAnswer struct {
	api.Invite
	// QR is the code's QR symbol, one string per row, '1' for a dark
	// module; empty when the code is too long for a QR symbol.
	QR []string `json:"qr,omitempty"`
}

func (s *Server) invite(r *http.Request) (any, error) {
	var p struct {
		Expires string `json:"expires,omitempty"` // a Go duration, e.g. "24h"
	}
	if err := decode(r, &p); err != nil {
		return nil, err
	}
	req := api.InviteRequest{Group: r.PathValue("group")}
	if p.Expires != "" {
		d, err := time.ParseDuration(p.Expires)
		if err != nil || d <= 0 || d > api.MaxInviteExpiry {
			return nil, badRequest("expires must be a duration up to %v", api.MaxInviteExpiry)
		}
		req.Expires = d
	}
	inv, err := s.svc.InviteWith(r.Context(), req)
	if err != nil {
		return nil, err
	}
	return inviteAnswer{Invite: inv, QR: qrRows(inv.Code)}, nil
}

// events streams the device's events as server-sent events, one JSON
// api.Event per "data:" line, until the client goes or the server stops.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	rc := http.NewResponseController(w)
	evs, err := s.svc.Subscribe(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	// The first line tells the client the subscription is live, so it
	// can reload what it may have missed while connecting.
	fmt.Fprint(w, ": ready\n\n")
	rc.Flush()
	tick := time.NewTicker(heartbeatGap)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return
			}
			b, err := json.Marshal(ev)
			if err != nil {
				s.log.Warn("web: encoding event", "err", err)
				continue
			}
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Kind, b); err != nil {
				return
			}
		case <-tick.C:
			// A session that ended (sign-out, expiry) ends its stream.
			if status, _ := s.auth.check(r); status != 0 {
				return
			}
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
		case <-r.Context().Done():
			// The service closes the channel once the context has
			// ended; draining it leaves none of its senders blocked.
			for range evs {
			}
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
