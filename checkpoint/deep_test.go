package checkpoint

import (
	"bytes"
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDeepScanFindsDamageOutsideKeys damages a part's embedding pages: the
// key scan (resume) still reads it, a deep scan (verify --deep) reports it.
func TestDeepScanFindsDamageOutsideKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(256)})
	must(t, w.Add(ctx, corpusRows(4, 25, 256)...))
	must(t, w.Close(ctx))
	p := filepath.Join(root, "part-000001.parquet")
	b, err := os.ReadFile(p)
	must(t, err)
	// The embedding column chunk is the bulk of the file: zero 4 KB in the middle.
	mid := len(b) * 2 / 3
	clear(b[mid : mid+4096])
	must(t, os.WriteFile(p, b, 0o644))

	ix, err := Scan(ctx, NewDir(root), ScanOptions{})
	must(t, err)
	if len(ix.Unreadable()) != 0 || ix.Len() != 100 {
		t.Fatalf("key scan: %d keys, unreadable %v; want the keys read", ix.Len(), ix.Unreadable())
	}
	ix, err = Scan(ctx, NewDir(root), ScanOptions{Deep: true})
	must(t, err)
	if len(ix.Unreadable()) != 1 || ix.Len() != 0 {
		t.Errorf("deep scan: %d keys, unreadable %v; want the damaged part reported", ix.Len(), ix.Unreadable())
	}
}

// TestDeepScanSeesEveryFlippedByte flips bytes at many offsets of a part (a
// bit flip and a whole-byte flip) and checks that deep verify never calls
// the part clean while its rows read back differently.
func TestDeepScanSeesEveryFlippedByte(t *testing.T) {
	if raceEnabled {
		// A decoder panic on hostile bytes is recovered (errCorrupt) in a
		// normal build; under -race, checkptr makes parquet-go's
		// unsafe.Slice of a nil pointer a fatal error instead.
		t.Skip("flipping bytes under the decoder needs a build without -race (checkptr); run go test -run FlippedByte ./checkpoint/")
	}
	t.Parallel()
	var buf bytes.Buffer
	rows := corpusRows(3, 4, 16)
	must(t, writeRows(&buf, rows))
	orig := buf.Bytes()
	want := appendRows(rows)
	expect := Expect{Model: testModel, Dimensions: 16}
	step := max(1, len(orig)/1500)
	detected, clean := 0, 0
	for off := 0; off < len(orig); off += step {
		for _, mask := range []byte{0x01, 0xff} {
			b := slices.Clone(orig)
			b[off] ^= mask
			if !deepClean(b, expect) {
				detected++
				continue
			}
			clean++
			got, err := ReadRows(bytes.NewReader(b), int64(len(b)))
			if err != nil || !bytes.Equal(appendRows(got), want) {
				t.Errorf("byte %d ^ %#x: deep verify says clean, but the rows differ (read error %v)", off, mask, err)
			}
		}
	}
	t.Logf("%d bytes, %d flips: %d detected, %d harmless (rows unchanged)", len(orig), detected+clean, detected, clean)
	if detected == 0 {
		t.Fatal("no flip detected")
	}
}

// deepClean reports whether a deep scan finds nothing wrong with part b.
func deepClean(b []byte, want Expect) bool {
	pk, err := readPartKeys(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return false
	}
	bad, err := deepCheck(bytes.NewReader(b), int64(len(b)), pk, want)
	return err == nil && !slices.ContainsFunc(bad, func(s string) bool { return s != "" })
}

func appendRows(rows []Row) []byte {
	var out []byte
	for i := range rows {
		out = appendRow(out, &rows[i])
	}
	return out
}

// TestDeepRowChecks: rows written NaN, zero, with a text that does not match
// its sha256 or of another model (as a writer without checks, or an older
// reembed, could) are reported invalid by a deep scan, not indexed, and a
// deep Open leaves them to be embedded again; a plain scan does not see them.
func TestDeepRowChecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	rows := corpusRows(2, 5, 8)
	rows[1].Embedding = slices.Clone(rows[1].Embedding)
	rows[1].Embedding[3] = float32(math.NaN())
	rows[2].Embedding = make([]float32, 8)
	rows[3].Text = "not the text that was hashed"
	rows[4].Model = "text-embedding-3-large"
	var buf bytes.Buffer
	must(t, writeRows(&buf, rows)) // bypasses Writer.Add's checks
	must(t, NewDir(root).Commit(ctx, "part-000001.parquet", func(w io.Writer) error { _, err := w.Write(buf.Bytes()); return err }))
	m := testManifest(8)
	m.FormatVersion = FormatVersion
	must(t, NewDir(root).Commit(ctx, ManifestName, func(w io.Writer) error { b, _ := encodeManifest(m); _, err := w.Write(b); return err }))

	plain, err := Scan(ctx, NewDir(root), ScanOptions{Expect: Expect{Model: testModel, Dimensions: 8}})
	must(t, err)
	if n, _ := plain.Invalid(); plain.Len() != 10 || n != 0 {
		t.Errorf("plain scan: %d keys, %d invalid; want 10 and 0 (it reads keys only)", plain.Len(), n)
	}
	deep, err := Scan(ctx, NewDir(root), ScanOptions{Deep: true, Expect: Expect{Model: testModel, Dimensions: 8}})
	must(t, err)
	n, sample := deep.Invalid()
	if n != 4 || deep.Len() != 6 {
		t.Fatalf("deep scan: %d invalid %+v, %d keys; want 4 invalid, 6 keys", n, sample, deep.Len())
	}
	for i, want := range []string{"NaN", "all zeros", "chunk_sha256", "model"} {
		if !strings.Contains(sample[i].Reason, want) || sample[i].Row != i+1 {
			t.Errorf("invalid row %d: %+v, want row %d and %q", i, sample[i], i+1, want)
		}
	}
	rep := deep.Coverage(expectedOf(corpusRows(2, 5, 8)))
	if rep.Complete() || rep.Missing != 4 || rep.InvalidRows != 4 {
		t.Errorf("deep coverage %+v: want 4 missing, 4 invalid", rep)
	}
	w := openWriter(t, NewDir(root), Options{Manifest: m, Deep: true})
	var todo []Row
	for _, r := range corpusRows(2, 5, 8) {
		if !w.Index().Has(r.Key(), r.ChunkSHA256) {
			todo = append(todo, r)
		}
	}
	if len(todo) != 4 {
		t.Fatalf("a deep resume would embed %d rows again, want the 4 invalid ones", len(todo))
	}
	must(t, w.Add(ctx, todo...))
	must(t, w.Close(ctx))
	deep, err = Scan(ctx, NewDir(root), ScanOptions{Deep: true, Expect: Expect{Model: testModel, Dimensions: 8}})
	must(t, err)
	if rep := deep.Coverage(expectedOf(corpusRows(2, 5, 8))); !rep.Complete() || rep.InvalidRows != 4 {
		t.Errorf("after the deep resume: %+v, want complete (the 4 old invalid rows shadowed, still reported)", rep)
	}
}

// TestPlainScanRefusesOtherLength: without Deep, a part whose vectors are not
// the manifest's length (from its footer) is not reused.
func TestPlainScanRefusesOtherLength(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(8)})
	must(t, w.Add(ctx, corpusRows(1, 3, 8)...))
	must(t, w.Close(ctx))
	ix, err := Scan(ctx, NewDir(root), ScanOptions{Expect: Expect{Dimensions: 16}})
	must(t, err)
	if n, _ := ix.Invalid(); ix.Len() != 0 || n != 3 {
		t.Errorf("scan expecting 16 dimensions over 8: %d keys, %d invalid; want 0 and 3", ix.Len(), n)
	}
}
