package corpus

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// streamCorpus writes a corpus for the streaming tests into a new
// directory: the token testdata's files, random text with invalid UTF-8,
// an empty file, a one-line document, gzip files (one truncated), an HTML
// page (never streamed) and JSONL records.
func streamCorpus(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, b []byte) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join("..", "testdata", "tokens", "corpus")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		write("tokens/"+filepath.ToSlash(rel)+".txt", b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for i := range 12 {
		b := randomText(rng, 200+i*400)
		for range i % 4 {
			at := rng.IntN(len(b) + 1)
			b = slices.Insert(b, at, []byte{0xE2, 0x82, 0xFF, 0xF0, 0x9F}[:1+rng.IntN(5)]...)
		}
		write(fmt.Sprintf("random/r%02d.txt", i), b)
	}
	write("empty.txt", nil)
	write("line.txt", bytes.ReplaceAll(randomText(rng, 3000), []byte("\n"), []byte(" ")))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(randomText(rng, 500))
	zw.Close()
	write("packed.txt.gz", gz.Bytes())
	gz.Reset()
	zw = gzip.NewWriter(&gz)
	zw.Write(randomText(rng, 5000))
	zw.Close()
	write("truncated.txt.gz", gz.Bytes()[:gz.Len()*2/3]) // skipped either way, with the same reason
	write("page.html", []byte("<html><body><p>"+strings.Repeat("streaming html ", 300)+"</p></body></html>"))
	write("recs.jsonl", []byte(`{"id":"a","text":"first record"}`+"\n"+`{"id":"b","text":"second \u00e9 record"}`+"\n"))
	return dir
}

// streamScan reads root with the given threshold through ScanStream and two
// chunkings (so a streamed document is read twice), and returns every chunk
// in corpus order, the stats, and how many documents were streamed.
func streamScan(t *testing.T, root string, above int64, chunkers []*Chunker) ([]string, *Stats, int64) {
	t.Helper()
	src, err := Open([]string{root}, Options{StreamAbove: above})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var streamed atomic.Int64
	var got []string
	work := func(doc Document, part func([]string) error) ([]string, error) {
		if doc.Streamed() {
			streamed.Add(1)
			if doc.Text != nil {
				t.Errorf("%s: streamed with its text in memory", doc.ID)
			}
		}
		var out []string
		for i, ch := range chunkers {
			n, split, err := ch.ChunkDocument(&doc, func(index int, text []byte, tokens int) error {
				out = append(out, fmt.Sprintf("%s|%d|%d|%q|%d", doc.ID, i, index, text, tokens))
				if len(out) >= 3 { // parts, to prove their order
					if err := part(out); err != nil {
						return err
					}
					out = nil
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			out = append(out, fmt.Sprintf("%s|%d|end|%d|%v|%d|%d", doc.ID, i, n, split, doc.Bytes, doc.InvalidUTF8))
		}
		return out, nil
	}
	st, err := ScanStream(context.Background(), src, 2, work, func(r []string) error {
		got = append(got, r...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, st, streamed.Load()
}

// TestStreamedDocumentsMatchInMemory is the differential test of the
// streamed read: a corpus read with every plain-text file streamed
// (StreamAbove 1), compressed files and JSONL records too, gives the same chunks, billed tokens, document tokens,
// bytes, invalid UTF-8 counts and stats, in the same order, as read whole
// (StreamAbove -1), a truncated gzip file skipped with the same reason; HTML
// files are never streamed.
func TestStreamedDocumentsMatchInMemory(t *testing.T) {
	pc := defaultPieceCounter(t)
	var chunkers []*Chunker
	for _, p := range [][3]int{{512, 64, 8191}, {0, 0, 300}} {
		c, err := NewChunker(pc, p[0], p[1], p[2])
		if err != nil {
			t.Fatal(err)
		}
		chunkers = append(chunkers, c)
	}
	root := streamCorpus(t)
	want, wantSt, n := streamScan(t, root, -1, chunkers)
	if n != 0 {
		t.Fatalf("StreamAbove -1 streamed %d documents", n)
	}
	got, gotSt, n := streamScan(t, root, 1, chunkers)
	if w := plainTextFiles(t, root, 1) + 3; n != w { // and the 2 JSONL records and packed.txt.gz
		t.Errorf("StreamAbove 1 streamed %d documents, want %d", n, w)
	}
	if !reflect.DeepEqual(gotSt, wantSt) {
		t.Errorf("stats streamed %+v, whole %+v", gotSt, wantSt)
	}
	if !slices.ContainsFunc(wantSt.Skipped, func(s Skip) bool { return strings.HasSuffix(s.Path, "truncated.txt.gz") }) {
		t.Errorf("skipped %+v, want truncated.txt.gz among them", wantSt.Skipped)
	}
	if wantSt.InvalidUTF8Documents == 0 {
		t.Fatal("the corpus has no invalid UTF-8: the test proves less than it says")
	}
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("chunk %d: streamed %s, whole %s", i, got[i], want[i])
			}
		}
		t.Fatalf("%d chunks streamed, %d whole", len(got), len(want))
	}
	_, _, n = streamScan(t, root, DefaultStreamAbove, chunkers)
	if n != 0 {
		t.Errorf("the default threshold streamed %d small documents", n)
	}
}

// plainTextFiles counts the .txt files under root larger than above bytes
// with no NUL byte: those that are streamed.
func plainTextFiles(t *testing.T, root string, above int64) int64 {
	var n int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".txt" {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && int64(len(b)) > above && bytes.IndexByte(b[:min(len(b), binarySniffLen)], 0) < 0 {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStreamedDocumentsAllocateLittle reads an 8 MiB one-line text file and
// an 8 MiB JSONL record (with escapes, its id after its text) with a
// threshold of 64 KiB (a JSONL record's first bytes up to the threshold are
// read before it is known to be long) and checks the scan allocated far
// less than the documents' size in all: they were streamed, not read whole, while their
// tokens equal the in-memory count.
func TestStreamedDocumentsAllocateLittle(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	pc := defaultPieceCounter(t)
	ch, err := NewChunker(pc, 512, 64, 8191)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(41, 42))
	unit := bytes.ReplaceAll(randomText(rng, 1<<16), []byte("\n"), []byte(" "))
	text := bytes.Repeat(unit, (8<<20)/len(unit))
	quoted, err := json.Marshal(string(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, content string }{
		{"one-line.txt", string(text)},
		{"record.jsonl", `{"text":` + string(quoted) + `,"id":"big"}` + "\n"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, c.name), []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		wantN, _, _ := ch.Chunk(bytes.ToValidUTF8(text, []byte("\uFFFD")), func(int, []byte, int) error { return nil })
		src, err := Open([]string{dir}, Options{StreamAbove: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var n int
		streamed := false
		_, err = Scan(context.Background(), src, 1, func(doc Document) (int, error) {
			streamed = doc.Streamed()
			n, _, err = ch.ChunkDocument(&doc, func(int, []byte, int) error { return nil })
			return n, err
		}, func(int) error { return nil })
		runtime.ReadMemStats(&after)
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d bytes, %d tokens, %d bytes allocated", c.name, len(c.content), n, alloc)
		if !streamed || n != wantN {
			t.Errorf("%s: streamed %v, %d tokens; want streamed, %d tokens", c.name, streamed, n, wantN)
		}
		if alloc > uint64(len(c.content))/3 {
			t.Errorf("%s: reading a %d-byte document allocated %d bytes", c.name, len(c.content), alloc)
		}
	}
}
