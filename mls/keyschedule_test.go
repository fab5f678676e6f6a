package mls

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

func TestGroupContextRoundTrip(t *testing.T) {
	gc := &GroupContext{
		Version: ProtocolVersionMLS10, CipherSuite: 1, GroupID: []byte("g"), Epoch: 7,
		TreeHash: []byte{1, 2}, ConfirmedTranscriptHash: []byte{3},
		Extensions: Extensions{{Type: ExtensionApplicationID, Data: []byte("x")}},
	}
	enc, err := gc.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back GroupContext
	if err := back.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	enc2, _ := back.MarshalBinary()
	if !bytes.Equal(enc, enc2) {
		t.Fatalf("round trip differs: %x vs %x", enc, enc2)
	}
	if err := back.UnmarshalBinary(append(enc, 0)); !errors.Is(err, ErrDecode) {
		t.Fatalf("trailing byte: got %v, want ErrDecode", err)
	}
	c := gc.Clone()
	c.GroupID[0] = 'h'
	if gc.GroupID[0] != 'g' {
		t.Fatal("Clone aliases GroupID")
	}
}

func TestEpochSecretsErase(t *testing.T) {
	s, _ := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.Suite()
	e, err := s.DeriveEpochSecrets(make([]byte, 32), nil, nil, []byte("gc"))
	if err != nil {
		t.Fatal(err)
	}
	held := [][]byte{e.JoinerSecret, e.InitSecret, e.EncryptionSecret, e.ExporterSecret}
	e.Erase()
	for i, h := range held {
		if !bytes.Equal(h, make([]byte, len(h))) {
			t.Errorf("secret %d not zeroed: %x", i, h)
		}
	}
	if e.InitSecret != nil {
		t.Error("InitSecret still referenced after Erase")
	}
}

func TestExternalInitWrongKeyDisagrees(t *testing.T) {
	s, _ := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.Suite()
	kp, err := s.ExternalKeyPair(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := s.ExternalKeyPair(bytes.Repeat([]byte{2}, 32))
	kemOut, secret, err := s.ExternalInit(kp.PublicKey(), &fixedRand{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ExternalInitSecret(kp, kemOut)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("member secret %x, %v; want %x", got, err, secret)
	}
	wrong, err := s.ExternalInitSecret(other, kemOut)
	if err == nil && bytes.Equal(wrong, secret) {
		t.Fatal("a different external key recovered the same init_secret")
	}
	if _, err := s.ExternalInitSecret(kp, []byte{1, 2, 3}); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("short kem_output: got %v, want ErrDecrypt", err)
	}
}

func TestPreSharedKeyIDCodec(t *testing.T) {
	ids := []PreSharedKeyID{
		{PSKType: PSKTypeExternal, PSKID: []byte("id"), PSKNonce: []byte("n")},
		{PSKType: PSKTypeResumption, Usage: ResumptionPSKUsageBranch, PSKGroupID: []byte("g"), PSKEpoch: 9, PSKNonce: []byte("n")},
	}
	for _, id := range ids {
		enc, err := marshal(id.marshal)
		if err != nil {
			t.Fatal(err)
		}
		var back PreSharedKeyID
		if err := unmarshalAll("PreSharedKeyID", enc, back.unmarshal); err != nil {
			t.Fatal(err)
		}
		enc2, _ := marshal(back.marshal)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip differs")
		}
	}
	for _, bad := range [][]byte{
		{0, 0, 0},             // reserved type
		{3, 0, 0},             // unknown type
		{2, 0, 0, 0, 0, 0, 0}, // reserved usage
	} {
		var p PreSharedKeyID
		s := cryptobyte.String(bad)
		if p.unmarshal(&s) {
			t.Errorf("decoded invalid PreSharedKeyID %x", bad)
		}
	}
	if _, err := marshal((&PreSharedKeyID{PSKType: 9}).marshal); err == nil {
		t.Error("encoded a PreSharedKeyID of unknown type")
	}
}

func TestPSKSecretOrderMatters(t *testing.T) {
	s, _ := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.Suite()
	a := PSKWithSecret{ID: PreSharedKeyID{PSKType: PSKTypeExternal, PSKID: []byte("a"), PSKNonce: []byte{1}}, PSK: []byte("ka")}
	b := PSKWithSecret{ID: PreSharedKeyID{PSKType: PSKTypeExternal, PSKID: []byte("b"), PSKNonce: []byte{2}}, PSK: []byte("kb")}
	ab, _ := s.PSKSecret([]PSKWithSecret{a, b})
	ba, _ := s.PSKSecret([]PSKWithSecret{b, a})
	none, _ := s.PSKSecret(nil)
	if bytes.Equal(ab, ba) {
		t.Fatal("psk_secret independent of PSK order")
	}
	if !bytes.Equal(none, make([]byte, 32)) {
		t.Fatalf("no PSKs: got %x, want zero vector", none)
	}
}

func TestExternalPubExtension(t *testing.T) {
	ext, err := ExternalPubExtension([]byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ext.Data, []byte{3, 1, 2, 3}) || ext.Type != ExtensionExternalPub {
		t.Fatalf("encoded %+v", ext)
	}
	pub, err := ParseExternalPub(ext)
	if err != nil || !bytes.Equal(pub, []byte{1, 2, 3}) {
		t.Fatalf("parsed %x, %v", pub, err)
	}
	if _, err := ParseExternalPub(Extension{Type: ExtensionExternalPub, Data: []byte{3, 1, 2}}); !errors.Is(err, ErrDecode) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := ParseExternalPub(Extension{Type: ExtensionRatchetTree, Data: []byte{0}}); !errors.Is(err, ErrDecode) {
		t.Fatalf("wrong type: %v", err)
	}
}
