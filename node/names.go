package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"grove/account"
	"grove/mls"
)

// Display names are chosen by their owner and reach every member inside
// credentials, so they are hostile input like any other: a name that hides
// characters (zero-width, bidi overrides, controls) or imitates another
// member's name would let one member pass for another in every list and
// log line. checkName is applied to our own name at init and to every name
// received in a credential, so such a credential never enters a group; and
// members whose names still look alike (confusables such as Cyrillic "а"
// for Latin "a", or case) are shown with a suffix that tells them apart
// (displayNames).

// ErrBadName is wrapped by checkName's errors.
var ErrBadName = errors.New("node: invalid display name")

// checkName reports whether name is acceptable as a display name: 1 to
// maxNameLen bytes of UTF-8 in NFC, no leading or trailing space, and no
// character that is invisible or reorders text: controls, format characters
// (zero-width spaces and joiners, bidi marks, overrides and isolates, the
// byte order mark), line and paragraph separators, private-use and
// unassigned code points, variation selectors and Hangul fillers.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrBadName)
	case len(name) > maxNameLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadName, maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not UTF-8", ErrBadName)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: leading or trailing space", ErrBadName)
	case !norm.NFC.IsNormalString(name):
		return fmt.Errorf("%w: not in Unicode normal form C", ErrBadName)
	}
	for _, r := range name {
		if hiddenRune(r) {
			return fmt.Errorf("%w: contains the invisible or control character U+%04X", ErrBadName, r)
		}
	}
	return nil
}

// hiddenRune reports characters that render as nothing, or change how the
// text around them renders, and so can make two different names look
// identical.
func hiddenRune(r rune) bool {
	switch {
	case unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs, unicode.Zl, unicode.Zp):
		return true // controls, format (U+200B-U+200F, U+202A-U+202E, U+2060-U+2069, U+FEFF, ...)
	case !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Zs):
		return true // unassigned
	case unicode.Is(unicode.Variation_Selector, r):
		return true
	case r == '\u115f' || r == '\u1160' || r == '\u3164' || r == '\uffa0' || r == '\u034f':
		return true // Hangul fillers and the combining grapheme joiner render blank
	case unicode.Is(unicode.Zs, r) && r != ' ':
		return true // only the ordinary space separates words in a name
	}
	return false
}

// confusables maps letters that are commonly drawn like a Latin letter or
// digit to it, after NFKC and lower-casing (a subset of Unicode's
// confusables for the scripts a small team's names are most likely to mix:
// Latin, Greek, Cyrillic, and digits that pass for letters).
var confusables = map[rune]rune{
	// Cyrillic
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'к': 'k', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p',
	'с': 'c', 'т': 't', 'у': 'y', 'х': 'x', 'ѕ': 's', 'і': 'l', 'ї': 'l', 'ј': 'j', 'һ': 'h',
	'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'ӏ': 'l', 'ɡ': 'g',
	// Greek
	'α': 'a', 'β': 'b', 'ε': 'e', 'η': 'n', 'ι': 'l', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p',
	'τ': 't', 'υ': 'u', 'χ': 'x', 'ω': 'w', 'γ': 'y',
	// Latin look-alikes and digits
	'ı': 'l', 'i': 'l', '1': 'l', '|': 'l', '0': 'o', '5': 's', 'ß': 's',
}

// nameSkeleton folds a name to a form in which names that look alike are
// equal: compatibility normalisation (NFKC folds full-width and styled
// letters), lower case, confusable letters mapped to one representative,
// combining marks, spaces and separators dropped. It is for comparison only,
// never shown.
func nameSkeleton(name string) string {
	s := strings.ToLower(norm.NFKC.String(name))
	s = norm.NFD.String(s)
	var b strings.Builder
	for _, r := range s {
		if unicode.Is(unicode.Mn, r) || unicode.IsSpace(r) || strings.ContainsRune("-_.·'’", r) {
			continue
		}
		if c, ok := confusables[r]; ok {
			r = c
		}
		b.WriteRune(r)
	}
	// "rn" is drawn like "m" in many fonts; "vv" like "w".
	out := strings.ReplaceAll(b.String(), "rn", "m")
	return strings.ReplaceAll(out, "vv", "w")
}

// nameTag is the suffix that tells apart members whose names look alike:
// eight hex digits of a hash of the credential identity (name and peer id).
// It is not a safety number (a member can grind a suffix of this length),
// only a visible difference; members are verified by their fingerprints.
func nameTag(identity []byte) string {
	h := sha256.Sum256(append([]byte("grove name tag"), identity...))
	return hex.EncodeToString(h[:4])
}

// personKey names the person behind identity (parsed as mi): its account
// when it carries a device certificate, so that all devices of one person
// share a name tag, else the identity itself. The certificate is not
// verified here (the identity alone lacks the key it covers): every leaf's
// certificate was verified when the leaf entered the group (commitRule,
// addConflict), and senders are members.
func personKey(identity []byte, mi memberIdentity) []byte {
	return personKeyIn(identity, mi, nil)
}

// personKeyIn is personKey with the account followed through the
// rotations rots (accountrotate.go): one person whose key was rotated
// stays one person.
func personKeyIn(identity []byte, mi memberIdentity, rots *account.Rotations) []byte {
	if mi.Cert != nil {
		acct := mi.Cert.Account
		if rots != nil {
			acct = rots.Current(acct)
		}
		return append([]byte("account:"), acct...)
	}
	return identity
}

// displayNamesOf is displayNames of g's members, under g's account
// rotations.
func displayNamesOf(g *mls.Group) map[string]string {
	return displayNamesIn(identities(g), groupRotations(g))
}

// displayNames returns, for each identity (by its string form), the name to
// show: the name itself, or "name #tag" when another identity in the set has
// a name with the same skeleton. Identities that do not parse are left out.
func displayNames(identities [][]byte) map[string]string {
	return displayNamesIn(identities, nil)
}

// displayNamesIn is displayNames under the account rotations rots.
func displayNamesIn(identities [][]byte, rots *account.Rotations) map[string]string {
	type entry struct {
		id   []byte
		name string
	}
	bySkel := map[string][]entry{}
	// The devices of one account are one person: one entry, keyed and
	// tagged by the account key (devices.go), so siblings never count as
	// look-alikes of each other.
	person := map[string][]byte{}
	for _, id := range identities {
		mi, err := parseIdentity(id)
		if err != nil {
			continue
		}
		key := personKeyIn(id, mi, rots)
		person[string(id)] = key
		k := nameSkeleton(mi.Name)
		dup := false
		for _, e := range bySkel[k] {
			if string(e.id) == string(key) {
				dup = true
			}
		}
		if !dup {
			bySkel[k] = append(bySkel[k], entry{key, mi.Name})
		}
	}
	byKey := map[string]string{}
	for _, es := range bySkel {
		for _, e := range es {
			if len(es) > 1 {
				byKey[string(e.id)] = e.name + " #" + nameTag(e.id)
			} else {
				byKey[string(e.id)] = e.name
			}
		}
	}
	out := map[string]string{}
	for id, key := range person {
		out[id] = byKey[string(key)]
	}
	return out
}

// shownNames is the display names of the members of the group's head epoch
// (displayNames), kept for the message views, which are built on and off
// the actor's goroutine. The actor refreshes it whenever it moves to a new
// head (noteHeadMembers).
type shownNames struct {
	mu        sync.Mutex
	names     map[string]string // identity -> shown name
	skeletons map[string]bool   // nameSkeleton of every member's name
}

// update takes the members of g, the new head.
func (s *shownNames) update(g *mls.Group) {
	ids := identities(g)
	names := displayNamesOf(g)
	skel := make(map[string]bool, len(ids))
	for _, id := range ids {
		if mi, err := parseIdentity(id); err == nil {
			skel[nameSkeleton(mi.Name)] = true
		}
	}
	s.mu.Lock()
	s.names, s.skeletons = names, skel
	s.mu.Unlock()
}

// name returns how to show identity, whose own name is name: as among the
// current members, or, for a sender who is no longer (or never was) a
// member, with its tag when its name looks like a current member's, so
// that nobody's old or forged message passes for a member's.
func (s *shownNames) name(identity []byte, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if shown, ok := s.names[string(identity)]; ok {
		return shown
	}
	if s.skeletons[nameSkeleton(name)] {
		mi, err := parseIdentity(identity)
		if err != nil {
			return name + " #" + nameTag(identity)
		}
		return name + " #" + nameTag(personKey(identity, mi))
	}
	return name
}

func identities(g *mls.Group) [][]byte {
	ms := g.Members()
	out := make([][]byte, len(ms))
	for i, m := range ms {
		out[i] = m.Identity
	}
	return out
}
