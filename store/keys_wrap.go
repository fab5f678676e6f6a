package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/argon2"
)

// The store key is random; a KeyFile says where it is kept and, for a
// passphrase, holds it sealed. Changing the passphrase reseals the same key,
// so no database file is rewritten.
//
// KeyFile encoding (version 1), followed by a SHA-256 of everything before
// it, so that a damaged file is told apart from a wrong passphrase:
//
//	"GRVK" | version (1) | mode (1) | body
//	mode 1 (file):       key (32)
//	mode 2 (passphrase): time (4) | memory KiB (4) | threads (1) | salt (16)
//	                     | nonce (12) | sealed key (48): AES-256-GCM under
//	                     Argon2id(passphrase, salt), additional data: all
//	                     bytes before the nonce
//	mode 3 (keyring):    nothing: the key is in the OS keyring

// KeyMode says where a store key is kept.
type KeyMode byte

const (
	// KeyInFile: the key itself is in the key file, protected by its mode
	// (0600) only.
	KeyInFile KeyMode = 1
	// KeyByPassphrase: the key file holds the key sealed under a key
	// derived from a passphrase with Argon2id.
	KeyByPassphrase KeyMode = 2
	// KeyInKeyring: the key is in the OS keyring.
	KeyInKeyring KeyMode = 3
)

func (m KeyMode) String() string {
	switch m {
	case KeyInFile:
		return "key file"
	case KeyByPassphrase:
		return "passphrase"
	case KeyInKeyring:
		return "keyring"
	}
	return fmt.Sprintf("mode %d", byte(m))
}

// ErrWrongPassphrase is returned by KeyFile.Unseal for a passphrase that
// does not open the key.
var ErrWrongPassphrase = errors.New("wrong passphrase")

// ErrCorruptKeyFile is returned by ParseKeyFile for a damaged key file.
var ErrCorruptKeyFile = errors.New("the store key file is damaged")

// KDFParams are Argon2id's parameters.
type KDFParams struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// DefaultKDF is RFC 9106's second recommended option (64 MiB, 3 passes),
// with 4 lanes.
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

// Bounds on parameters read from a file, so that a hostile file cannot make
// unlocking take gigabytes or hours.
const (
	maxKDFMemoryKiB = 1 << 20
	maxKDFTime      = 64
)

// KeyFile is the decoded key file.
type KeyFile struct {
	Mode KeyMode
	// Key is the store key (KeyInFile only).
	Key []byte
	// KDF, Salt, Nonce and Sealed are the passphrase-sealed key
	// (KeyByPassphrase only).
	KDF    KDFParams
	Salt   []byte
	Nonce  []byte
	Sealed []byte
}

const (
	keyFileMagic   = "GRVK"
	keyFileVersion = 1
	kdfSaltSize    = 16
)

// NewStoreKey returns a random store key.
func NewStoreKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("store: generate key: %w", err)
	}
	return k, nil
}

// SealWithPassphrase returns a KeyByPassphrase key file holding key.
func SealWithPassphrase(key, passphrase []byte, p KDFParams) (*KeyFile, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("store: key of %d bytes", len(key))
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	kf := &KeyFile{Mode: KeyByPassphrase, KDF: p, Salt: make([]byte, kdfSaltSize), Nonce: make([]byte, 12)}
	if _, err := rand.Read(kf.Salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(kf.Nonce); err != nil {
		return nil, err
	}
	aead, err := kf.aead(passphrase)
	if err != nil {
		return nil, err
	}
	kf.Sealed = aead.Seal(nil, kf.Nonce, key, kf.header())
	return kf, nil
}

func (p KDFParams) check() error {
	if p.Time == 0 || p.Time > maxKDFTime || p.Threads == 0 ||
		p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB {
		return fmt.Errorf("store: Argon2id parameters out of range: %+v", p)
	}
	return nil
}

func (kf *KeyFile) aead(passphrase []byte) (cipher.AEAD, error) {
	k := argon2.IDKey(passphrase, kf.Salt, kf.KDF.Time, kf.KDF.MemoryKiB, kf.KDF.Threads, KeySize)
	defer clear(k)
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// header is the encoding up to (not including) the nonce: the additional
// data of the sealed key, so that its parameters cannot be swapped.
func (kf *KeyFile) header() []byte {
	b := []byte(keyFileMagic)
	b = append(b, keyFileVersion, byte(kf.Mode))
	if kf.Mode == KeyByPassphrase {
		b = binary.BigEndian.AppendUint32(b, kf.KDF.Time)
		b = binary.BigEndian.AppendUint32(b, kf.KDF.MemoryKiB)
		b = append(b, kf.KDF.Threads)
		b = append(b, kf.Salt...)
	}
	return b
}

// Unseal returns the store key of a KeyByPassphrase file, or an error
// wrapping ErrWrongPassphrase.
func (kf *KeyFile) Unseal(passphrase []byte) ([]byte, error) {
	if kf.Mode != KeyByPassphrase {
		return nil, fmt.Errorf("store: the key is kept by %v, not a passphrase", kf.Mode)
	}
	aead, err := kf.aead(passphrase)
	if err != nil {
		return nil, err
	}
	key, err := aead.Open(nil, kf.Nonce, kf.Sealed, kf.header())
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return key, nil
}

// MarshalBinary encodes the key file.
func (kf *KeyFile) MarshalBinary() ([]byte, error) {
	b := kf.header()
	switch kf.Mode {
	case KeyInFile:
		if len(kf.Key) != KeySize {
			return nil, fmt.Errorf("store: key of %d bytes", len(kf.Key))
		}
		b = append(b, kf.Key...)
	case KeyByPassphrase:
		if len(kf.Salt) != kdfSaltSize || len(kf.Nonce) != 12 || len(kf.Sealed) != KeySize+16 {
			return nil, errors.New("store: incomplete passphrase key file")
		}
		b = append(b, kf.Nonce...)
		b = append(b, kf.Sealed...)
	case KeyInKeyring:
	default:
		return nil, fmt.Errorf("store: unknown key mode %d", kf.Mode)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...), nil
}

// ParseKeyFile decodes a key file; any damage is an error wrapping
// ErrCorruptKeyFile.
func ParseKeyFile(data []byte) (*KeyFile, error) {
	bad := func(why string) error { return fmt.Errorf("%w (%s)", ErrCorruptKeyFile, why) }
	if len(data) < len(keyFileMagic)+2+sha256.Size {
		return nil, bad("too short")
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return nil, bad("checksum mismatch")
	}
	if string(body[:4]) != keyFileMagic {
		return nil, bad("not a grove key file")
	}
	if body[4] != keyFileVersion {
		return nil, bad(fmt.Sprintf("version %d", body[4]))
	}
	kf := &KeyFile{Mode: KeyMode(body[5])}
	rest := body[6:]
	switch kf.Mode {
	case KeyInFile:
		if len(rest) != KeySize {
			return nil, bad("wrong length")
		}
		kf.Key = append([]byte(nil), rest...)
	case KeyByPassphrase:
		if len(rest) != 4+4+1+kdfSaltSize+12+KeySize+16 {
			return nil, bad("wrong length")
		}
		kf.KDF = KDFParams{Time: binary.BigEndian.Uint32(rest), MemoryKiB: binary.BigEndian.Uint32(rest[4:]), Threads: rest[8]}
		if err := kf.KDF.check(); err != nil {
			return nil, bad(err.Error())
		}
		rest = rest[9:]
		kf.Salt = append([]byte(nil), rest[:kdfSaltSize]...)
		kf.Nonce = append([]byte(nil), rest[kdfSaltSize:kdfSaltSize+12]...)
		kf.Sealed = append([]byte(nil), rest[kdfSaltSize+12:]...)
	case KeyInKeyring:
		if len(rest) != 0 {
			return nil, bad("wrong length")
		}
	default:
		return nil, bad(fmt.Sprintf("unknown mode %d", kf.Mode))
	}
	return kf, nil
}

// maxKeyFileSize bounds how much of a key file ReadKeyFile reads.
const maxKeyFileSize = 4096

// ReadKeyFile reads and decodes the key file at path. A missing file is
// an error wrapping fs.ErrNotExist.
func ReadKeyFile(path string) (*KeyFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("%s: %w (too large)", path, ErrCorruptKeyFile)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	kf, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kf, nil
}

// WriteKeyFile writes kf to path, mode 0600, atomically: a crash leaves the
// old file or the new one.
func WriteKeyFile(path string, kf *KeyFile) error {
	data, err := kf.MarshalBinary()
	if err != nil {
		return err
	}
	defer clear(data)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	err = tmp.Chmod(privateFileMode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}
