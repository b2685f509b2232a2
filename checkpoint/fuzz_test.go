package checkpoint

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDamagedPartsAreReported flips random bytes of a part, 1000 times: the
// key reader must report corruption (or read consistent keys), never panic,
// hang or allocate what a corrupt size field claims (the decoder would ask
// for up to 8 GB: found by FuzzReadPartKeys, testdata/fuzz).
func TestDamagedPartsAreReported(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := writeRows(&b, corpusRows(2, 3, 4)); err != nil {
		t.Fatal(err)
	}
	good := b.Bytes()
	rng := rand.New(rand.NewPCG(7, 7))
	for range 1000 {
		data := bytes.Clone(good)
		for range 1 + rng.IntN(4) {
			data[rng.IntN(len(data))] ^= byte(1 + rng.IntN(255))
		}
		checkDamaged(t, data)
	}
}

func checkDamaged(t *testing.T, data []byte) {
	t.Helper()
	pk, err := readPartKeys(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		if !errors.Is(err, errCorrupt) {
			t.Fatalf("error not marked corrupt: %v", err)
		}
		return
	}
	// A damaged part that still reads must not yield more rows than were
	// written, nor doc_ids that were never written.
	written := corpusRows(2, 3, 4)
	if len(pk.docIDs) > len(written) {
		t.Fatalf("read %d rows from a part of %d", len(pk.docIDs), len(written))
	}
	for _, id := range pk.docIDs {
		if !slices.ContainsFunc(written, func(r Row) bool { return r.DocID == id }) {
			t.Fatalf("read doc_id %q, never written", id)
		}
	}
}

// FuzzReadPartKeys feeds damaged parts to the key reader: it must return
// keys or an error (corrupt), never panic or hang.
func FuzzReadPartKeys(f *testing.F) {
	var b bytes.Buffer
	if err := writeRows(&b, corpusRows(2, 3, 4)); err != nil {
		f.Fatal(err)
	}
	good := b.Bytes()
	f.Add(good, 0, byte(0))
	f.Add(good, len(good)/2, byte(0xff))
	f.Add(good, len(good)-9, byte(0x7f)) // footer length
	f.Add(good[:len(good)-1], 0, byte(0))
	f.Fuzz(func(t *testing.T, data []byte, at int, x byte) {
		data = bytes.Clone(data)
		if len(data) > 0 {
			at = ((at % len(data)) + len(data)) % len(data)
			data[at] ^= x
		}
		checkDamaged(t, data)
	})
}
