package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Grove's own wire formats: the application payload inside MLS
// PrivateMessages, the tip heartbeat on the group topic, the frames of
// /grove/join/1 and /grove/sync/1, and invite codes. Each has one
// encode/decode pair, a version byte, bounded lengths, and rejects trailing
// bytes; decoders never panic (fuzzed in wire_fuzz_test.go).

// ErrMalformed is wrapped by every decoder error.
var ErrMalformed = errors.New("node: malformed message")

// Bounds on decoded fields.
const (
	maxText        = 64 << 10
	maxGroupID     = 64
	maxIdentity    = 512
	maxKeyPackage  = 64 << 10
	maxWelcome     = 1 << 20
	maxSyncEntries = 4096
	maxAddrs       = 16
	maxAddrLen     = 256
)

type wbuf struct{ b []byte }

func (w *wbuf) u8(v byte)    { w.b = append(w.b, v) }
func (w *wbuf) u64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *wbuf) raw(p []byte) { w.b = append(w.b, p...) }
func (w *wbuf) vec(p []byte) {
	w.b = binary.AppendUvarint(w.b, uint64(len(p)))
	w.b = append(w.b, p...)
}

type rbuf struct {
	b   []byte
	err error
}

func (r *rbuf) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
	r.b = nil
}

func (r *rbuf) u8(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *rbuf) u64(what string) uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *rbuf) fixed(n int, what string) []byte {
	if r.err != nil || len(r.b) < n {
		r.fail(what)
		return nil
	}
	v := bytes.Clone(r.b[:n])
	r.b = r.b[n:]
	return v
}

func (r *rbuf) vec(limit int, what string) []byte {
	if r.err != nil {
		return nil
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 || n > uint64(limit) || n > uint64(len(r.b)-k) {
		r.fail(what)
		return nil
	}
	// Canonical varints only, so that decode-then-encode is byte-exact.
	if k != len(binary.AppendUvarint(nil, n)) {
		r.fail(what + " (non-minimal length)")
		return nil
	}
	v := bytes.Clone(r.b[k : k+int(n)])
	r.b = r.b[k+int(n):]
	return v
}

func (r *rbuf) done(what string) error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(what + ": trailing bytes")
	}
	return r.err
}

// ---- application payload (inside an MLS PrivateMessage) ----

const payloadVersion = 1

// payloadKind says what an application payload carries.
type payloadKind uint8

const (
	kindText   payloadKind = 1
	kindIntent payloadKind = 2
	// kindWelcome relays a Welcome from the admin that committed a join
	// request to the member whose invite the joiner redeemed (Ref names
	// the join request). The Welcome is encrypted to the joiner's
	// KeyPackage, so the group learns nothing it did not already know.
	kindWelcome payloadKind = 3
	// kindContent carries a content payload (content_wire.go): posts with
	// replies, mentions or files, reactions, edits, deletes, receipts,
	// typing.
	kindContent payloadKind = 4
)

// intentKind is the change an intent asks for (ARCHITECTURE.md, section 3:
// members ask with an intent; a member allowed to commits it by value).
type intentKind uint8

const (
	intentLeave  intentKind = 1 // remove the sender
	intentRemove intentKind = 2 // remove Target (an admin asked from another device)
	// intentJoin asks an admin to add the holder of KeyPackage: a member
	// who is not an admin redeemed an invite it issued.
	intentJoin intentKind = 3
	// intentCancelJoin withdraws the sender's join request whose id is
	// Target (16 bytes): its joiner gave up before being welcomed.
	intentCancelJoin intentKind = 4
)

// appPayload is the plaintext of every Grove application message: a 128-bit
// id that deduplicates re-sends across epochs, the sender's clock, and the
// text or intent.
type appPayload struct {
	ID     [16]byte
	Kind   payloadKind
	Time   time.Time // sender's clock, Unix nanoseconds on the wire
	Text   string    // kindText
	Intent intentKind
	Target []byte // kindIntent: credential identity of the member concerned
	// KeyPackage (intentJoin) is the joiner's MLSMessage-framed KeyPackage.
	KeyPackage []byte
	Ref        [16]byte // kindWelcome: the id of the join request answered
	Welcome    []byte   // kindWelcome: the MLSMessage Welcome
	Content    *content // kindContent
}

func (p *appPayload) marshal() []byte {
	var w wbuf
	w.u8(payloadVersion)
	w.u8(byte(p.Kind))
	w.raw(p.ID[:])
	w.u64(uint64(p.Time.UnixNano()))
	switch p.Kind {
	case kindText:
		w.vec([]byte(p.Text))
	case kindIntent:
		w.u8(byte(p.Intent))
		w.vec(p.Target)
		if p.Intent == intentJoin {
			w.vec(p.KeyPackage)
		}
	case kindWelcome:
		w.raw(p.Ref[:])
		w.vec(p.Welcome)
	case kindContent:
		w.vec(p.Content.marshal())
	}
	return w.b
}

func unmarshalPayload(data []byte) (*appPayload, error) {
	r := rbuf{b: data}
	if v := r.u8("payload version"); r.err == nil && v != payloadVersion {
		return nil, fmt.Errorf("%w: payload version %d", ErrMalformed, v)
	}
	p := &appPayload{Kind: payloadKind(r.u8("payload kind"))}
	copy(p.ID[:], r.fixed(16, "message id"))
	p.Time = time.Unix(0, int64(r.u64("time"))).UTC()
	switch p.Kind {
	case kindText:
		p.Text = string(r.vec(maxText, "text"))
	case kindIntent:
		p.Intent = intentKind(r.u8("intent"))
		p.Target = r.vec(maxIdentity, "target")
		if r.err == nil && (p.Intent < intentLeave || p.Intent > intentCancelJoin) {
			return nil, fmt.Errorf("%w: intent %d", ErrMalformed, p.Intent)
		}
		if p.Intent == intentJoin {
			p.KeyPackage = r.vec(maxKeyPackage, "key package")
		}
	case kindWelcome:
		copy(p.Ref[:], r.fixed(16, "join request id"))
		p.Welcome = r.vec(maxWelcome, "welcome")
	case kindContent:
		if body := r.vec(maxContent+16, "content"); r.err == nil {
			c, err := unmarshalContent(body)
			if err != nil {
				return nil, err
			}
			p.Content = c
		}
	default:
		if r.err == nil {
			return nil, fmt.Errorf("%w: payload kind %d", ErrMalformed, p.Kind)
		}
	}
	if err := r.done("payload"); err != nil {
		return nil, err
	}
	return p, nil
}

// ---- tip heartbeat (on the group topic, beside MLS messages) ----

// tipPrefix starts every tip, followed by its version byte. An MLSMessage
// starts with its version, 0x0001, so the two can never be confused on the
// topic.
//
// Versions: 1 carries no addresses; 2 adds the sender's listen addresses
// (signed with the rest); 3 has the fields of 2 and travels on the topic
// only sealed under a key of the epoch it names (epochseal.go), so that
// only that epoch's members read it, and in the clear only at the end of
// a sync response (serveSync), whose stream only the requester reads. A
// node takes no plain tip from gossip (earlier versions were readable by
// anyone on the topic; their senders are on another topic anyway, as
// topic names now come from the group secret).
var tipPrefix = []byte{0xff, 'G', 'T'}

const (
	tipV1 = 1
	tipV2 = 2
	tipV3 = 3
)

// maxTipAddrs bounds the addresses in a tip; each is at most maxAddrLen
// bytes (binary multiaddr).
const maxTipAddrs = 8

// errTipVersion: a tip of a version this node does not know (a newer
// node's): not malformed, just not for us.
var errTipVersion = fmt.Errorf("%w: unknown tip version", ErrMalformed)

// tip is a member's signed heartbeat: the canonical epoch it is on and the
// newest epoch it holds final, and (version 2 on) the addresses it listens
// on. It is signed with the member's MLS signature key (SignWithLabel
// "grove tip", RFC 9420, Section 5.1.2), as the key that seals it is
// shared by every member of the epoch. Sealed (version 3), it reveals
// nothing to anyone who does not hold the epoch it names.
//
// The addresses let members that never met find each other: a member
// that joined through an inviter knows only the inviter's address, and
// without mDNS or a DHT it would reach the others only through the
// inviter (group_sync.go, learnTipAddrs).
type tip struct {
	Version   uint8 // tipV1, tipV2 or tipV3; zero encodes as tipV3
	Group     []byte
	Time      uint64 // sender's clock (Unix ns): makes every heartbeat a new gossip message
	Epoch     uint64
	Eid       [16]byte
	RootEpoch uint64
	Root      [16]byte
	SigKey    []byte   // the member's signature public key
	Addrs     [][]byte // version 2: binary multiaddrs, at most maxTipAddrs, each at most maxAddrLen; not parsed here
	Signature []byte
}

func (t *tip) version() uint8 {
	if t.Version == 0 {
		return tipV3
	}
	return t.Version
}

func (t *tip) tbs() []byte {
	var w wbuf
	w.raw(tipPrefix)
	w.u8(t.version())
	w.vec(t.Group)
	w.u64(t.Time)
	w.u64(t.Epoch)
	w.raw(t.Eid[:])
	w.u64(t.RootEpoch)
	w.raw(t.Root[:])
	w.vec(t.SigKey)
	if t.version() >= tipV2 {
		w.u8(byte(len(t.Addrs)))
		for _, a := range t.Addrs {
			w.vec(a)
		}
	}
	return w.b
}

func (t *tip) marshal() []byte {
	w := wbuf{b: t.tbs()}
	w.vec(t.Signature)
	return w.b
}

// isTip reports whether data is a tip of any version (rather than an
// MLSMessage).
func isTip(data []byte) bool { return bytes.HasPrefix(data, tipPrefix) }

// futureTip reports whether data is a tip of a later version than this
// node knows.
func futureTip(data []byte) bool {
	return isTip(data) && len(data) > len(tipPrefix) && data[len(tipPrefix)] > tipV3
}

func unmarshalTip(data []byte) (*tip, error) {
	if !isTip(data) {
		return nil, fmt.Errorf("%w: not a tip", ErrMalformed)
	}
	r := rbuf{b: data[len(tipPrefix):]}
	t := &tip{Version: r.u8("version")}
	if r.err == nil && (t.Version < tipV1 || t.Version > tipV3) {
		return nil, fmt.Errorf("%w %d", errTipVersion, t.Version)
	}
	t.Group = r.vec(maxGroupID, "group")
	t.Time = r.u64("time")
	t.Epoch = r.u64("epoch")
	copy(t.Eid[:], r.fixed(16, "eid"))
	t.RootEpoch = r.u64("root epoch")
	copy(t.Root[:], r.fixed(16, "root"))
	t.SigKey = r.vec(256, "signature key")
	if t.Version >= tipV2 {
		n := int(r.u8("addrs"))
		if n > maxTipAddrs {
			r.fail("too many addresses")
		}
		for i := 0; i < n && r.err == nil; i++ {
			t.Addrs = append(t.Addrs, r.vec(maxAddrLen, "addr"))
		}
	}
	t.Signature = r.vec(512, "signature")
	if err := r.done("tip"); err != nil {
		return nil, err
	}
	return t, nil
}

// ---- /grove/join/1 ----

const joinVersion = 1

// joinRequest redeems an invite: the invite secret and a fresh KeyPackage
// (an MLSMessage of wire format mls_key_package).
type joinRequest struct {
	Secret     [16]byte
	KeyPackage []byte
}

func (j *joinRequest) marshal() []byte {
	var w wbuf
	w.u8(joinVersion)
	w.raw(j.Secret[:])
	w.vec(j.KeyPackage)
	return w.b
}

func unmarshalJoinRequest(data []byte) (*joinRequest, error) {
	r := rbuf{b: data}
	if v := r.u8("version"); r.err == nil && v != joinVersion {
		return nil, fmt.Errorf("%w: join version %d", ErrMalformed, v)
	}
	j := &joinRequest{}
	copy(j.Secret[:], r.fixed(16, "secret"))
	j.KeyPackage = r.vec(maxKeyPackage, "key package")
	if err := r.done("join request"); err != nil {
		return nil, err
	}
	return j, nil
}

// joinResponse is the inviter's answer: the Welcome (status ok) or a short
// reason (any other status). Code, when not zero, classifies the reason so
// that the joiner can say it in its user's terms; it is an optional last
// field, absent when zero, so that responses of inviters that predate it
// decode unchanged. (A joiner that predates it cannot decode a response
// carrying one: inviters set it only on rejections and failures, where
// such a joiner loses the reason text, not the join.) A waiting keepalive
// carries, in Reason, what the inviter waits for (joinWait*): joiners
// that predate it ignore it.
type joinResponse struct {
	Status  joinStatus
	Welcome []byte // ok: the MLSMessage Welcome, ratchet_tree included
	Name    string // ok: the group's display name
	Reason  string
	Code    joinReason
}

// joinReason classifies a rejection or failure.
type joinReason uint8

const (
	joinReasonNone joinReason = iota
	// joinReasonInviterLeaving: the inviter has left the group or is
	// being removed from it.
	joinReasonInviterLeaving
	// joinReasonNoAdmin: the inviter is not an admin and no admin added
	// the joiner.
	joinReasonNoAdmin
	// joinReasonRateLimited: the inviter refuses join attempts for now.
	joinReasonRateLimited
	// joinReasonBadCode: unknown, expired or used invite code.
	joinReasonBadCode
	joinReasonMax = joinReasonBadCode
)

// Reasons a waiting keepalive gives (joinResponse.Reason).
const (
	joinWaitInviter = "waiting for the inviter to add you"
	joinWaitAdmin   = "waiting for an admin to add you"
	joinWaitNoAdmin = "waiting for an admin to add you: none is online now"
)

type joinStatus uint8

const (
	joinOK       joinStatus = 1
	joinRejected joinStatus = 2 // unknown, expired or used code
	joinFailed   joinStatus = 3 // the inviter could not add us
	joinWaiting  joinStatus = 4 // keepalive: the Add is not final yet
)

func (j *joinResponse) marshal() []byte {
	var w wbuf
	w.u8(joinVersion)
	w.u8(byte(j.Status))
	if j.Status == joinOK {
		w.vec(j.Welcome)
		w.vec([]byte(j.Name))
	} else {
		w.vec([]byte(j.Reason))
		if j.Code != joinReasonNone {
			w.u8(byte(j.Code))
		}
	}
	return w.b
}

func unmarshalJoinResponse(data []byte) (*joinResponse, error) {
	r := rbuf{b: data}
	if v := r.u8("version"); r.err == nil && v != joinVersion {
		return nil, fmt.Errorf("%w: join version %d", ErrMalformed, v)
	}
	j := &joinResponse{Status: joinStatus(r.u8("status"))}
	switch j.Status {
	case joinOK:
		j.Welcome = r.vec(maxWelcome, "welcome")
		j.Name = string(r.vec(255, "name"))
	case joinRejected, joinFailed, joinWaiting:
		j.Reason = string(r.vec(512, "reason"))
		if r.err == nil && len(r.b) > 0 {
			// Zero is written as absence: accepting it would make two
			// encodings of one response.
			if j.Code = joinReason(r.u8("reason code")); j.Code == joinReasonNone || j.Code > joinReasonMax {
				return nil, fmt.Errorf("%w: join reason code %d", ErrMalformed, j.Code)
			}
		}
	default:
		if r.err == nil {
			return nil, fmt.Errorf("%w: join status %d", ErrMalformed, j.Status)
		}
	}
	if err := r.done("join response"); err != nil {
		return nil, err
	}
	return j, nil
}

// ---- /grove/sync/1 ----

const syncVersion = 1

// syncRequest asks for the log of a group from epoch From on, or (Kind
// syncGroupInfo) for a signed GroupInfo of the canonical epoch followed by
// its epoch id, for a rejoin by external Commit.
type syncRequest struct {
	Kind  uint8
	Group []byte
	From  uint64
}

const (
	syncLog       = 0
	syncGroupInfo = 1
)

func (s *syncRequest) marshal() []byte {
	var w wbuf
	w.u8(syncVersion)
	w.u8(s.Kind)
	w.vec(s.Group)
	w.u64(s.From)
	return w.b
}

func unmarshalSyncRequest(data []byte) (*syncRequest, error) {
	r := rbuf{b: data}
	if v := r.u8("version"); r.err == nil && v != syncVersion {
		return nil, fmt.Errorf("%w: sync version %d", ErrMalformed, v)
	}
	s := &syncRequest{Kind: r.u8("kind")}
	s.Group = r.vec(maxGroupID, "group")
	s.From = r.u64("from")
	if r.err == nil && s.Kind != syncLog && s.Kind != syncGroupInfo {
		return nil, fmt.Errorf("%w: sync kind %d", ErrMalformed, s.Kind)
	}
	if err := r.done("sync request"); err != nil {
		return nil, err
	}
	if len(s.Group) == 0 {
		return nil, fmt.Errorf("%w: empty group id", ErrMalformed)
	}
	return s, nil
}

// syncBatch is one response frame: logged MLS messages in epoch order.
// The stream ends (EOF) after the last batch.
type syncBatch struct {
	Messages [][]byte
}

func (s *syncBatch) marshal() []byte {
	size := 1 + binary.MaxVarintLen64
	for _, m := range s.Messages {
		size += binary.MaxVarintLen64 + len(m)
	}
	// Sized up front: a page is up to syncBatchBytes, and growing it by
	// appends cost a resync's server a fifth of its CPU (BenchmarkResync).
	w := wbuf{b: make([]byte, 0, size)}
	w.u8(syncVersion)
	w.b = binary.AppendUvarint(w.b, uint64(len(s.Messages)))
	for _, m := range s.Messages {
		w.vec(m)
	}
	return w.b
}

func unmarshalSyncBatch(data []byte) (*syncBatch, error) {
	r := rbuf{b: data}
	if v := r.u8("version"); r.err == nil && v != syncVersion {
		return nil, fmt.Errorf("%w: sync version %d", ErrMalformed, v)
	}
	if r.err != nil {
		return nil, r.err
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 || n > maxSyncEntries || k != len(binary.AppendUvarint(nil, n)) {
		return nil, fmt.Errorf("%w: sync batch count", ErrMalformed)
	}
	r.b = r.b[k:]
	s := &syncBatch{}
	for range n {
		m := r.vec(maxWelcome, "message")
		if r.err != nil {
			break
		}
		s.Messages = append(s.Messages, m)
	}
	if err := r.done("sync batch"); err != nil {
		return nil, err
	}
	return s, nil
}

// ---- invite codes ----

const (
	inviteVersion = 1
	invitePrefix  = "grove-"
)

// ErrBadInvite is wrapped by every invite-code decoding error.
var ErrBadInvite = errors.New("node: malformed invite code")

// invite is what an invite code carries: which group, the one-time secret,
// when it expires and how to reach the inviter.
type invite struct {
	Group   []byte
	Secret  [16]byte
	Expires time.Time // second precision
	Peer    []byte    // inviter's peer ID (binary)
	Addrs   []string  // inviter's multiaddrs
}

var inviteEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// encode returns a compact, copy-pasteable code: "grove-" and the base32 of
// the fields and a 4-byte SHA-256 checksum (so a mistyped code is rejected
// locally, before any network round trip).
func (iv *invite) encode() string {
	var w wbuf
	w.u8(inviteVersion)
	w.vec(iv.Group)
	w.raw(iv.Secret[:])
	w.u64(uint64(iv.Expires.Unix()))
	w.vec(iv.Peer)
	w.u8(byte(len(iv.Addrs)))
	for _, a := range iv.Addrs {
		w.vec([]byte(a))
	}
	sum := sha256.Sum256(w.b)
	w.raw(sum[:4])
	return invitePrefix + strings.ToLower(inviteEncoding.EncodeToString(w.b))
}

func decodeInvite(code string) (*invite, error) {
	code = strings.TrimSpace(code)
	if !strings.HasPrefix(strings.ToLower(code), invitePrefix) {
		return nil, fmt.Errorf("%w: missing %q prefix", ErrBadInvite, invitePrefix)
	}
	if len(code) > 4096 {
		return nil, fmt.Errorf("%w: too long", ErrBadInvite)
	}
	raw, err := inviteEncoding.DecodeString(strings.ToUpper(code[len(invitePrefix):]))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInvite, err)
	}
	if len(raw) < 5 {
		return nil, fmt.Errorf("%w: too short", ErrBadInvite)
	}
	body, sum := raw[:len(raw)-4], raw[len(raw)-4:]
	want := sha256.Sum256(body)
	if !bytes.Equal(sum, want[:4]) {
		return nil, fmt.Errorf("%w: checksum mismatch (mistyped?)", ErrBadInvite)
	}
	r := rbuf{b: body}
	if v := r.u8("version"); r.err == nil && v != inviteVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadInvite, v)
	}
	iv := &invite{Group: r.vec(maxGroupID, "group")}
	copy(iv.Secret[:], r.fixed(16, "secret"))
	iv.Expires = time.Unix(int64(r.u64("expires")), 0).UTC()
	iv.Peer = r.vec(128, "peer")
	n := int(r.u8("addrs"))
	if n > maxAddrs {
		r.fail("too many addresses")
	}
	for i := 0; i < n && r.err == nil; i++ {
		iv.Addrs = append(iv.Addrs, string(r.vec(maxAddrLen, "addr")))
	}
	if err := r.done("invite"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInvite, err)
	}
	if len(iv.Group) == 0 || len(iv.Peer) == 0 {
		return nil, fmt.Errorf("%w: empty group or peer", ErrBadInvite)
	}
	return iv, nil
}
