package account

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/cryptobyte"
)

// Backup errors.
var (
	// ErrWrongPassphrase: the backup does not open with this passphrase.
	ErrWrongPassphrase = errors.New("account: wrong passphrase for this backup")
	// ErrDamagedBackup: a file that is no Grove backup, or a damaged one.
	ErrDamagedBackup = errors.New("account: backup file is damaged or not a grove backup")
)

// Backup is what `grove backup create` saves: the account, the devices it
// knows, the groups it is in and the history it can read. Never MLS epoch
// states or secrets: a backup cannot decrypt traffic, and a restored home
// becomes a new device of the account that must be added to its groups.
type Backup struct {
	AccountName string
	Key         *Key
	Devices     []*Certificate
	Revocations []*Revocation
	Groups      []Group
	Messages    []Message
}

// Group is one group the account was in.
type Group struct {
	ID    []byte
	Name  string
	Peers []Peer // members, to ask to be let in again
}

// Peer is a member's device: its peer id and the addresses last known.
type Peer struct {
	ID    []byte
	Addrs []string
}

// Message is one message of the history, as the device's view held it.
type Message struct {
	Group  []byte
	ID     [16]byte
	Time   time.Time
	Sender []byte // the sender's credential identity
	Text   string
	Epoch  uint64
}

// BackupOptions tunes WriteBackup. The zero value is the default.
type BackupOptions struct {
	// WorkFactor is the scrypt log2(N); zero selects age's default (18,
	// about a second). Tests lower it.
	WorkFactor int
}

const (
	backupMagic   = "grove-backup"
	backupVersion = 1
	recEnd        = 0
	recMessage    = 1
	maxRecord     = 1 << 20
	maxGroupID    = 64
	maxGroups     = 4096
	maxPeers      = 1024
)

// WriteBackup encrypts b to w with passphrase (age, scrypt recipient).
// Messages are streamed, one record each.
func WriteBackup(w io.Writer, passphrase string, b *Backup, opts BackupOptions) error {
	if passphrase == "" {
		return errors.New("account: empty backup passphrase")
	}
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return fmt.Errorf("account: backup passphrase: %w", err)
	}
	if opts.WorkFactor != 0 {
		r.SetWorkFactor(opts.WorkFactor)
	}
	aw, err := age.Encrypt(w, r)
	if err != nil {
		return fmt.Errorf("account: backup: %w", err)
	}
	bw := bufio.NewWriter(aw)
	head, err := b.marshalHeader()
	if err != nil {
		return err
	}
	if err := writeRecord(bw, 0xff, head); err != nil {
		return err
	}
	for i := range b.Messages {
		body, err := marshalMessage(&b.Messages[i])
		if err != nil {
			return err
		}
		if err := writeRecord(bw, recMessage, body); err != nil {
			return err
		}
	}
	if err := writeRecord(bw, recEnd, nil); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("account: backup: %w", err)
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("account: backup: %w", err)
	}
	return nil
}

func writeRecord(w io.Writer, typ byte, body []byte) error {
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(body)))
	if _, err := w.Write(h[:]); err != nil {
		return fmt.Errorf("account: backup: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("account: backup: %w", err)
	}
	return nil
}

func (b *Backup) marshalHeader() ([]byte, error) {
	if b.Key == nil || b.AccountName == "" || len(b.AccountName) > maxName {
		return nil, errors.New("account: backup without an account")
	}
	bb := cryptobyte.NewBuilder([]byte(backupMagic))
	bb.AddUint8(backupVersion)
	bb.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte(b.AccountName)) })
	bb.AddBytes(b.Key.priv.Seed())
	addCerts(bb, b.Devices)
	addRevocations(bb, b.Revocations)
	bb.AddUint16(uint16(len(b.Groups)))
	for _, g := range b.Groups {
		bb.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(g.ID) })
		bb.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte(g.Name)) })
		bb.AddUint16(uint16(len(g.Peers)))
		for _, p := range g.Peers {
			bb.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(p.ID) })
			n := min(len(p.Addrs), maxAddrs)
			bb.AddUint8(uint8(n))
			for _, a := range p.Addrs[:n] {
				bb.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte(a)) })
			}
		}
	}
	out, err := bb.Bytes()
	if err != nil || len(out) > maxRecord {
		return nil, fmt.Errorf("account: backup header too large or malformed: %v", err)
	}
	return out, nil
}

func marshalMessage(m *Message) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.Group) })
	b.AddBytes(m.ID[:])
	b.AddUint64(uint64(m.Time.UnixNano()))
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.Sender) })
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.Text)) })
	b.AddUint64(m.Epoch)
	out, err := b.Bytes()
	if err != nil || len(out) > maxRecord {
		return nil, fmt.Errorf("account: backup message too large or malformed: %v", err)
	}
	return out, nil
}

func parseMessage(data []byte) (Message, error) {
	s := cryptobyte.String(data)
	var (
		m            Message
		g, snd, text cryptobyte.String
		nanos        uint64
	)
	if !s.ReadUint8LengthPrefixed(&g) || !s.CopyBytes(m.ID[:]) || !s.ReadUint64(&nanos) ||
		!s.ReadUint16LengthPrefixed(&snd) || !readUint32Prefixed(&s, &text) || !s.ReadUint64(&m.Epoch) || !s.Empty() {
		return Message{}, fmt.Errorf("%w: message record", ErrDamagedBackup)
	}
	if len(g) == 0 || len(g) > maxGroupID {
		return Message{}, fmt.Errorf("%w: message group id", ErrDamagedBackup)
	}
	m.Group, m.Sender, m.Text = bytes.Clone(g), bytes.Clone(snd), string(text)
	m.Time = time.Unix(0, int64(nanos)).UTC()
	return m, nil
}

func parseHeader(data []byte) (*Backup, error) {
	if !bytes.HasPrefix(data, []byte(backupMagic)) {
		return nil, fmt.Errorf("%w: no backup header", ErrDamagedBackup)
	}
	s := cryptobyte.String(data[len(backupMagic):])
	var (
		ver  uint8
		name cryptobyte.String
		seed []byte
		ng   uint16
	)
	if !s.ReadUint8(&ver) || ver != backupVersion {
		return nil, fmt.Errorf("%w: backup version %d", ErrDamagedBackup, ver)
	}
	if !s.ReadUint8LengthPrefixed(&name) || len(name) == 0 || !s.ReadBytes(&seed, 32) {
		return nil, fmt.Errorf("%w: account", ErrDamagedBackup)
	}
	k, _ := ParseKey(seed)
	b := &Backup{AccountName: string(name), Key: k}
	var err error
	if b.Devices, err = readCerts(&s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamagedBackup, err)
	}
	if b.Revocations, err = readRevocations(&s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamagedBackup, err)
	}
	if !s.ReadUint16(&ng) || ng > maxGroups {
		return nil, fmt.Errorf("%w: group list", ErrDamagedBackup)
	}
	for range ng {
		var id, gname cryptobyte.String
		var np uint16
		if !s.ReadUint8LengthPrefixed(&id) || len(id) == 0 || len(id) > maxGroupID || !s.ReadUint8LengthPrefixed(&gname) ||
			!s.ReadUint16(&np) || np > maxPeers {
			return nil, fmt.Errorf("%w: group", ErrDamagedBackup)
		}
		g := Group{ID: bytes.Clone(id), Name: string(gname)}
		for range np {
			var p cryptobyte.String
			var na uint8
			if !s.ReadUint8LengthPrefixed(&p) || len(p) == 0 || !s.ReadUint8(&na) || na > maxAddrs {
				return nil, fmt.Errorf("%w: group peer", ErrDamagedBackup)
			}
			peer := Peer{ID: bytes.Clone(p)}
			for range na {
				var a cryptobyte.String
				if !s.ReadUint16LengthPrefixed(&a) || len(a) > maxAddrLen {
					return nil, fmt.Errorf("%w: group peer address", ErrDamagedBackup)
				}
				peer.Addrs = append(peer.Addrs, string(a))
			}
			g.Peers = append(g.Peers, peer)
		}
		b.Groups = append(b.Groups, g)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: trailing header bytes", ErrDamagedBackup)
	}
	// What the backup says about the account must hold under its key: a
	// file whose device list was swapped for another account's is refused.
	for _, c := range b.Devices {
		if err := c.VerifyFor(k.Public()); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDamagedBackup, err)
		}
	}
	for _, r := range b.Revocations {
		if err := r.Verify(k.Public()); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDamagedBackup, err)
		}
	}
	return b, nil
}

// ReadBackup decrypts and decodes a backup. A wrong passphrase is
// ErrWrongPassphrase; anything else that does not decode or authenticate
// is ErrDamagedBackup. Nothing is returned until the whole file has
// authenticated (age authenticates each 64 KiB chunk and the last one).
func ReadBackup(r io.Reader, passphrase string) (*Backup, error) {
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("account: backup passphrase: %w", err)
	}
	ar, err := age.Decrypt(r, id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) || errors.Is(err, age.ErrIncorrectIdentity) {
			return nil, ErrWrongPassphrase
		}
		return nil, fmt.Errorf("%w: %v", ErrDamagedBackup, err)
	}
	br := bufio.NewReader(ar)
	typ, body, err := readRecord(br)
	if err != nil {
		return nil, err
	}
	if typ != 0xff {
		return nil, fmt.Errorf("%w: no backup header", ErrDamagedBackup)
	}
	b, err := parseHeader(body)
	if err != nil {
		return nil, err
	}
	for {
		typ, body, err := readRecord(br)
		if err != nil {
			return nil, err
		}
		switch typ {
		case recEnd:
			if len(body) != 0 {
				return nil, fmt.Errorf("%w: end record", ErrDamagedBackup)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return nil, fmt.Errorf("%w: data after the end record", ErrDamagedBackup)
			}
			return b, nil
		case recMessage:
			m, err := parseMessage(body)
			if err != nil {
				return nil, err
			}
			b.Messages = append(b.Messages, m)
		default:
			return nil, fmt.Errorf("%w: record type %d", ErrDamagedBackup, typ)
		}
	}
}

func readRecord(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("%w: truncated (%v)", ErrDamagedBackup, err)
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxRecord {
		return 0, nil, fmt.Errorf("%w: record of %d bytes", ErrDamagedBackup, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("%w: truncated (%v)", ErrDamagedBackup, err)
	}
	return h[0], body, nil
}

// readUint32Prefixed reads a 32-bit length-prefixed field (cryptobyte has
// a builder for it but no reader).
func readUint32Prefixed(s *cryptobyte.String, out *cryptobyte.String) bool {
	var n uint32
	return s.ReadUint32(&n) && s.ReadBytes((*[]byte)(out), int(n))
}
