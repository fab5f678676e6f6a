// Package web is Grove's web client: an HTTP server that the daemon (grove
// up --gui) runs on a loopback address, serving a single-page chat client
// embedded in the binary and a small JSON API over the device's local API
// (api.Service; api.Conversations for replies, reactions, edits, deletes,
// typing and file downloads: conv.go; api.Devices for the account's
// devices, and the read-receipts switch: devices.go). docs/API.md
// documents that JSON API.
//
// It lives beside the terminal client (cmd/grove/internal/chat) because it
// is, like that one, a client of api.Service and nothing more: node never
// imports a user interface, and only the grove binary serves it.
//
// # Front end
//
// The client is plain ES modules, one stylesheet and one HTML page under
// assets/, embedded with go:embed. No build step, no Node toolchain, no
// framework and nothing fetched from the internet: a reviewer reads the
// same files the browser runs, the binary grows by tens of kilobytes, and a
// strict Content-Security-Policy (scripts from this origin only, no inline
// script or style attribute injection, no eval) holds without nonces.
// Server-rendered pages with htmx would have needed a vendored library and
// HTML templating of hostile text on the server; a chat view with live
// updates and scroll-back is simpler as a client that renders JSON.
// Every piece of text from the network reaches the page through
// textContent, never as HTML.
//
// # Security
//
// The server answers only requests whose Host is its own loopback address
// (no DNS rebinding). A browser signs in with a one-time link (Server.Login,
// printed by grove gui): the link's secret sits in the URL fragment, which
// the page posts back once; the answer sets a session cookie (HttpOnly,
// SameSite=Strict, host-only, so bound to 127.0.0.1) and returns a
// per-session request token that the page keeps in sessionStorage. Every
// API request needs both the cookie and the token in the X-Grove-Token
// header, and is refused when its Origin or Sec-Fetch-Site says it comes
// from another origin. Cookies do not separate ports, so a cookie leaked
// to another program listening on 127.0.0.1 is useless alone; the token
// is confined to this origin by the browser's same-origin policy.
package web
