package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"iter"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"
)

const testModel = "text-embedding-3-small"

var testTime = time.Date(2026, 11, 25, 9, 30, 0, 123_000_000, time.UTC)

func testManifest(dims int) Manifest {
	return Manifest{
		Model:          testModel,
		Dimensions:     dims,
		Encoding:       "cl100k_base",
		Chunking:       Chunking{ChunkTokens: 512, ChunkOverlap: 64},
		CorpusRoots:    []string{"/corpus"},
		ReembedVersion: "test",
	}
}

func shaHex(text string) string {
	s := sha256.Sum256([]byte(text))
	return hex.EncodeToString(s[:])
}

// vector is a deterministic embedding of text, like the simulated provider's.
func vector(text string, dims int) []float32 {
	v := make([]float32, dims)
	seed := sha256.Sum256([]byte(text))
	x := binary.LittleEndian.Uint64(seed[:8])
	for i := range v {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		v[i] = float32(int32(x>>32)) / math.MaxInt32
	}
	return v
}

func textOf(doc string, idx int, version int) string {
	return fmt.Sprintf("text of %s chunk %d v%d: the quick brown fox jumps over the lazy dog", doc, idx, version)
}

func makeRow(doc string, idx int, version, dims int) Row {
	text := textOf(doc, idx, version)
	return Row{
		DocID:       doc,
		ChunkIndex:  int32(idx),
		ChunkSHA256: shaHex(text),
		Text:        text,
		Tokens:      int32(len(text) / 4),
		Model:       testModel,
		Embedding:   vector(text, dims),
		EmbeddedAt:  testTime.Add(time.Duration(idx) * time.Millisecond),
	}
}

// corpusRows returns docs×chunks rows, version 1.
func corpusRows(docs, chunks, dims int) []Row {
	var rows []Row
	for d := range docs {
		for c := range chunks {
			rows = append(rows, makeRow(fmt.Sprintf("docs/%04d.md", d), c, 1, dims))
		}
	}
	return rows
}

func expectedOf(rows []Row) iter.Seq2[Key, string] {
	return func(yield func(Key, string) bool) {
		for _, r := range rows {
			if !yield(r.Key(), r.ChunkSHA256) {
				return
			}
		}
	}
}

func openWriter(t testing.TB, store Store, opts Options) *Writer {
	t.Helper()
	w, err := Open(context.Background(), store, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w
}

// listDir returns the files below root, sorted, slash-separated.
func listDir(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// readAllParts reads every row of every committed part below root.
func readAllParts(t testing.TB, root string) map[string][]Row {
	t.Helper()
	out := map[string][]Row{}
	for _, name := range listDir(t, root) {
		if classify(name).kind != kindPart {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := ReadRows(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("part %s does not read: %v", name, err)
		}
		out[name] = rows
	}
	return out
}

func keysOf(rows []Row) []Key {
	ks := make([]Key, len(rows))
	for i := range rows {
		ks[i] = rows[i].Key()
	}
	return ks
}

func sortedNames[M ~map[string]V, V any](m M) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}
