package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
)

// ListenFile, in the home, remembers the addresses `grove up` listened on
// when no --listen was given, with the ports the system chose the first
// time. A daemon that came back on new ports after each restart could not
// be found by members who had restarted too: each knew only the other's
// old ports.
const ListenFile = "listen"

// maxListenFile bounds what is read from ListenFile.
const maxListenFile = 4 << 10

// rememberedListen returns the addresses up listens on without --listen:
// the remembered ones, each whose port is now taken replaced by its
// default (a free port, remembered anew once bound), or defaults when
// nothing usable is remembered.
func rememberedListen(home string, defaults []string, log *slog.Logger) []string {
	path := filepath.Join(home, ListenFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return defaults
	}
	if err != nil {
		log.Info("ignoring remembered listen addresses", "path", path, "err", err)
		return defaults
	}
	remembered, err := parseListenFile(data)
	if err != nil || len(remembered) != len(defaults) {
		log.Info("ignoring remembered listen addresses", "path", path, "err", err)
		return defaults
	}
	out := make([]string, len(remembered))
	for i, a := range remembered {
		if a.String() == defaults[i] || !sameShape(a, defaults[i]) {
			out[i] = defaults[i]
			continue
		}
		if err := portFree(a); err != nil {
			log.Info("remembered port taken; listening on a free one", "addr", a, "err", err)
			out[i] = defaults[i]
			continue
		}
		out[i] = a.String()
	}
	return out
}

// parseListenFile reads one multiaddr a line; it rejects the whole file on
// any bad line (it is ours, so a bad line means damage).
func parseListenFile(data []byte) ([]ma.Multiaddr, error) {
	if len(data) > maxListenFile {
		return nil, fmt.Errorf("larger than %d bytes", maxListenFile)
	}
	var out []ma.Multiaddr
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		a, err := ma.NewMultiaddr(strings.TrimSpace(line))
		if err != nil {
			return nil, fmt.Errorf("bad address %q: %v", line, err)
		}
		if _, _, err := hostPort(a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// sameShape reports whether a is def with another port: the defaults may
// have changed since the file was written, and then they win.
func sameShape(a ma.Multiaddr, def string) bool {
	d, err := ma.NewMultiaddr(def)
	if err != nil {
		return false
	}
	return withPort(a, 0) == withPort(d, 0)
}

// hostPort returns the IP and the TCP or UDP port of a listen address.
func hostPort(a ma.Multiaddr) (network, hostport string, err error) {
	ip, err := a.ValueForProtocol(ma.P_IP4)
	if err != nil {
		if ip, err = a.ValueForProtocol(ma.P_IP6); err != nil {
			return "", "", fmt.Errorf("%s: no IP address", a)
		}
	}
	if p, err := a.ValueForProtocol(ma.P_TCP); err == nil {
		return "tcp", net.JoinHostPort(ip, p), nil
	}
	if p, err := a.ValueForProtocol(ma.P_UDP); err == nil {
		return "udp", net.JoinHostPort(ip, p), nil
	}
	return "", "", fmt.Errorf("%s: no TCP or UDP port", a)
}

// withPort returns a's text with its TCP or UDP port set to port.
func withPort(a ma.Multiaddr, port int) string {
	var parts []string
	for _, c := range a {
		v := c.Value()
		if code := c.Protocol().Code; code == ma.P_TCP || code == ma.P_UDP {
			v = strconv.Itoa(port)
		}
		if v == "" {
			parts = append(parts, c.Protocol().Name)
		} else {
			parts = append(parts, c.Protocol().Name, v)
		}
	}
	return "/" + strings.Join(parts, "/")
}

// portFree reports whether a's port can be bound now. The probe binds
// without SO_REUSEPORT, so a port held by another daemon (whose libp2p
// sockets share ports with SO_REUSEPORT) counts as taken.
func portFree(a ma.Multiaddr) error {
	network, hp, err := hostPort(a)
	if err != nil {
		return err
	}
	if network == "tcp" {
		l, err := net.Listen("tcp", hp)
		if err != nil {
			return err
		}
		return l.Close()
	}
	c, err := net.ListenPacket("udp", hp)
	if err != nil {
		return err
	}
	return c.Close()
}

// rememberListen writes the addresses listened on, with the ports bound:
// each of listen whose port is 0 takes the port of the first address in
// bound of the same transport.
func rememberListen(home string, listen, bound []string) error {
	var lines []string
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("listen address %q: %w", s, err)
		}
		port := boundPort(a, bound)
		if port == 0 {
			lines = append(lines, s) // not bound as far as we know: keep it as asked
			continue
		}
		lines = append(lines, withPort(a, port))
	}
	path := filepath.Join(home, ListenFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("remember listen addresses: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("remember listen addresses: %w", err)
	}
	return nil
}

// boundPort finds the port a was bound to: a's own if fixed, else the port
// of the first address in bound with the same transport (TCP, or UDP with
// the same protocols on top, e.g. quic-v1).
func boundPort(a ma.Multiaddr, bound []string) int {
	network, hp, err := hostPort(a)
	if err != nil {
		return 0
	}
	_, p, _ := net.SplitHostPort(hp)
	if n, _ := strconv.Atoi(p); n != 0 {
		return n
	}
	for _, s := range bound {
		b, err := ma.NewMultiaddr(s)
		if err != nil {
			continue
		}
		bn, bhp, err := hostPort(b)
		if err != nil || bn != network || transportTail(b) != transportTail(a) {
			continue
		}
		_, bp, _ := net.SplitHostPort(bhp)
		if n, _ := strconv.Atoi(bp); n != 0 {
			return n
		}
	}
	return 0
}

// transportTail names the protocols after the port (e.g. "quic-v1"), so
// that a QUIC address is not taken for another UDP transport.
func transportTail(a ma.Multiaddr) string {
	var tail []string
	after := false
	for _, c := range a {
		code := c.Protocol().Code
		if after && code != ma.P_P2P {
			tail = append(tail, c.Protocol().Name)
		}
		if code == ma.P_TCP || code == ma.P_UDP {
			after = true
		}
	}
	return strings.Join(tail, "/")
}
