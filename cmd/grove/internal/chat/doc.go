// Package chat is `grove chat`: a full-screen terminal chat client over a
// daemon's local API (api.Service), built on bubbletea, bubbles and
// lipgloss.
//
// It shows a group list with unread counts, the selected group's messages
// (day separators, wrapped lines, own/orphaned/re-sent/pending marks), an
// input line that takes text and slash commands, and a status bar (peers,
// epoch, catch-up progress, offline). Events from api.Service.Subscribe are
// fed into the model as EventMsg by Run, so that the model itself never
// blocks and its Update function can be tested step by step against
// apitest.Fake.
//
// It is not a daemon and keeps no state of its own: everything shown comes
// from the local API, and everything typed goes to it. Text from the network
// is hostile: control characters and escape sequences are made visible, never
// written to the terminal.
package chat
