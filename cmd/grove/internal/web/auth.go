package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Limits of the sign-in state, all in memory: a daemon restart signs every
// browser out (grove gui signs in again).
const (
	loginTTL       = 2 * time.Minute // an unused link stops working
	maxLoginTokens = 16              // outstanding links; the oldest goes first
	sessionTTL     = 7 * 24 * time.Hour
	maxSessions    = 32
	// tokenHeader carries the per-session request token.
	tokenHeader = "X-Grove-Token"
)

// auth holds one-time login tokens and sessions. Secrets are kept only as
// SHA-256 digests, so map lookups leak nothing useful through timing.
type auth struct {
	host   string // 127.0.0.1:PORT; the cookie name carries the port
	cookie string
	now    func() time.Time

	mu       sync.Mutex
	logins   map[[32]byte]time.Time // guarded by mu: digest -> expiry
	sessions map[[32]byte]*session  // guarded by mu: digest of the cookie value
}

type session struct {
	token   string // the request token, sent back in tokenHeader
	expires time.Time
}

func newAuth(host string, now func() time.Time) *auth {
	name := "grove_session"
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		// Cookies do not separate ports: two daemons on one machine
		// must not overwrite each other's session.
		name += "_" + host[i+1:]
	}
	return &auth{host: host, cookie: name, now: now,
		logins: make(map[[32]byte]time.Time), sessions: make(map[[32]byte]*session)}
}

func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("web: random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// newLoginToken mints a one-time sign-in secret.
func (a *auth) newLoginToken() (string, time.Time, error) {
	tok, err := randomToken()
	if err != nil {
		return "", time.Time{}, err
	}
	now := a.now()
	exp := now.Add(loginTTL)
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, e := range a.logins {
		if !now.Before(e) {
			delete(a.logins, k)
		}
	}
	for len(a.logins) >= maxLoginTokens {
		var oldest [32]byte
		first := true
		for k, e := range a.logins {
			if first || e.Before(a.logins[oldest]) {
				oldest, first = k, false
			}
		}
		delete(a.logins, oldest)
	}
	a.logins[digest(tok)] = exp
	return tok, exp, nil
}

// redeem consumes a login token and opens a session: it returns the
// cookie value and the request token, or ok false for an unknown, used
// or expired login token.
func (a *auth) redeem(loginToken string) (cookie, token string, ok bool, err error) {
	now := a.now()
	a.mu.Lock()
	k := digest(loginToken)
	exp, found := a.logins[k]
	delete(a.logins, k)
	a.mu.Unlock()
	if !found || !now.Before(exp) {
		return "", "", false, nil
	}
	if cookie, err = randomToken(); err != nil {
		return "", "", false, err
	}
	if token, err = randomToken(); err != nil {
		return "", "", false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, s := range a.sessions {
		if !now.Before(s.expires) {
			delete(a.sessions, k)
		}
	}
	for len(a.sessions) >= maxSessions {
		var oldest [32]byte
		first := true
		for k, s := range a.sessions {
			if first || s.expires.Before(a.sessions[oldest].expires) {
				oldest, first = k, false
			}
		}
		delete(a.sessions, oldest)
	}
	a.sessions[digest(cookie)] = &session{token: token, expires: now.Add(sessionTTL)}
	return cookie, token, true, nil
}

// check reports why r may not use the API, or "" when it may: it needs a
// live session cookie and that session's token in tokenHeader.
func (a *auth) check(r *http.Request) (status int, why string) {
	c, err := r.Cookie(a.cookie)
	if err != nil || c.Value == "" {
		return http.StatusUnauthorized, "not signed in: run grove gui for a sign-in link"
	}
	a.mu.Lock()
	s := a.sessions[digest(c.Value)]
	var token string
	live := s != nil && a.now().Before(s.expires)
	if live {
		token = s.token
	}
	a.mu.Unlock()
	if !live {
		return http.StatusUnauthorized, "session ended: run grove gui for a new sign-in link"
	}
	got := r.Header.Get(tokenHeader)
	if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		return http.StatusForbidden, "missing or wrong request token: open the link from grove gui again"
	}
	return 0, ""
}

// end closes the session whose cookie r carries.
func (a *auth) end(r *http.Request) {
	if c, err := r.Cookie(a.cookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, digest(c.Value))
		a.mu.Unlock()
	}
}

// sessionCookie is the cookie that carries a session: host-only (no
// Domain, so the browser sends it to this address only, if to every port
// of it), HttpOnly, SameSite=Strict, ended with the browser session.
func (a *auth) sessionCookie(value string) *http.Cookie {
	return &http.Cookie{Name: a.cookie, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// sameOrigin reports whether r comes from a page of this origin, judged by
// the headers browsers set and pages cannot forge: Origin and
// Sec-Fetch-Site. A request with neither (curl) is not a browser's
// cross-site request; the cookie and token checks still apply to it.
func (a *auth) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+a.host {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}
