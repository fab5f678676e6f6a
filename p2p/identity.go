package p2p

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
)

// maxKeyFileSize bounds how much of an identity file is read; a marshalled
// Ed25519 key is 68 bytes.
const maxKeyFileSize = 4096

// ErrCorruptKey is matched (errors.Is) by a *KeyFileError whose file exists
// but does not hold a usable Ed25519 key.
var ErrCorruptKey = errors.New("p2p: corrupt identity key file")

// ErrKeyPermissions is matched by a *KeyFileError whose file is readable or
// writable by group or others; like ssh, we refuse to use such a key.
var ErrKeyPermissions = errors.New("p2p: identity key file permissions too open")

// KeyFileError describes why an identity file could not be used.
type KeyFileError struct {
	Path   string
	Reason string
	Err    error // ErrCorruptKey or ErrKeyPermissions
}

func (e *KeyFileError) Error() string {
	return fmt.Sprintf("%v: %s: %s", e.Err, e.Path, e.Reason)
}

func (e *KeyFileError) Unwrap() error { return e.Err }

// LoadOrCreateIdentity returns the Ed25519 key stored at path, creating it
// (mode 0600, written atomically) if the file does not exist. A file that
// exists but is unreadable as an Ed25519 key is never overwritten: the peer
// ID is the device's identity in its groups, so losing it silently would cut
// the device off.
func LoadOrCreateIdentity(path string) (crypto.PrivKey, error) {
	return LoadOrCreateSealedIdentity(path, nil)
}

// LoadOrCreateSealedIdentity is LoadOrCreateIdentity with the file sealed
// under sealKey (32 bytes, the store key; nil means in the clear): the
// file is "GRVP" | version 1 | nonce (12) | AES-256-GCM of the marshalled
// key, with the first five bytes as additional data. A clear file found
// with a sealKey is sealed in place (atomically) once read.
func LoadOrCreateSealedIdentity(path string, sealKey []byte) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createIdentity(path, sealKey)
	}
	if err != nil {
		return nil, fmt.Errorf("p2p: open identity: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("p2p: stat identity: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, &KeyFileError{Path: path, Reason: fmt.Sprintf("mode %v, want 0600", st.Mode().Perm()), Err: ErrKeyPermissions}
	}
	buf := make([]byte, maxKeyFileSize+1)
	n, err := readFull(f, buf)
	if err != nil {
		return nil, fmt.Errorf("p2p: read identity: %w", err)
	}
	data := buf[:n]
	sealed := bytes.HasPrefix(data, []byte(sealedKeyMagic))
	if sealed {
		if sealKey == nil {
			return nil, &KeyFileError{Path: path, Reason: "sealed by the store key, which was not given", Err: ErrCorruptKey}
		}
		if data, err = unsealIdentity(data, sealKey); err != nil {
			return nil, &KeyFileError{Path: path, Reason: err.Error(), Err: ErrCorruptKey}
		}
		defer clear(data)
	}
	key, err := parseIdentity(path, data)
	if err != nil || sealed || sealKey == nil {
		return key, err
	}
	if err := writeIdentity(path, data, sealKey); err != nil {
		return nil, fmt.Errorf("p2p: seal identity: %w", err)
	}
	return key, nil
}

const sealedKeyMagic = "GRVP"

func identityAEAD(sealKey []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func unsealIdentity(data, sealKey []byte) ([]byte, error) {
	g, err := identityAEAD(sealKey)
	if err != nil {
		return nil, err
	}
	hdr := len(sealedKeyMagic) + 1
	if len(data) < hdr+g.NonceSize() || data[len(sealedKeyMagic)] != 1 {
		return nil, errors.New("truncated or unknown sealed key format")
	}
	out, err := g.Open(nil, data[hdr:hdr+g.NonceSize()], data[hdr+g.NonceSize():], data[:hdr])
	if err != nil {
		return nil, errors.New("cannot be decrypted with the store key")
	}
	return out, nil
}

// writeIdentity writes the marshalled key, sealed when sealKey is set.
func writeIdentity(path string, data, sealKey []byte) error {
	if sealKey != nil {
		g, err := identityAEAD(sealKey)
		if err != nil {
			return err
		}
		out := append([]byte(sealedKeyMagic), 1)
		hdr := len(out)
		nonce := make([]byte, g.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return err
		}
		out = append(out, nonce...)
		data = g.Seal(out, nonce, data, out[:hdr])
	}
	return writeFileAtomic(path, data, 0o600)
}

func parseIdentity(path string, data []byte) (crypto.PrivKey, error) {
	if len(data) > maxKeyFileSize {
		return nil, &KeyFileError{Path: path, Reason: "file too large", Err: ErrCorruptKey}
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, &KeyFileError{Path: path, Reason: err.Error(), Err: ErrCorruptKey}
	}
	if key.Type() != pb.KeyType_Ed25519 {
		return nil, &KeyFileError{Path: path, Reason: fmt.Sprintf("key type %v, want Ed25519", key.Type()), Err: ErrCorruptKey}
	}
	// A well-formed encoding may still hold a private key that does not
	// match its embedded public key; check by signing.
	msg := []byte("grove identity self-check")
	sig, err := key.Sign(msg)
	if err != nil {
		return nil, &KeyFileError{Path: path, Reason: err.Error(), Err: ErrCorruptKey}
	}
	if ok, err := key.GetPublic().Verify(msg, sig); err != nil || !ok {
		return nil, &KeyFileError{Path: path, Reason: "private and public halves do not match", Err: ErrCorruptKey}
	}
	return key, nil
}

func readFull(f *os.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
	}
	return n, nil
}

func createIdentity(path string, sealKey []byte) (crypto.PrivKey, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("p2p: generate identity: %w", err)
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("p2p: marshal identity: %w", err)
	}
	defer clear(data)
	if err := writeIdentity(path, data, sealKey); err != nil {
		return nil, fmt.Errorf("p2p: write identity: %w", err)
	}
	return key, nil
}

// writeFileAtomic writes data to a temporary file in path's directory and
// renames it over path, so a crash leaves either the old or the new file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	return nil
}
