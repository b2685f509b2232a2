package corpus

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkRecord is what a chunker reported for one chunk.
type chunkRecord struct {
	index  int
	text   string
	billed int
}

func collect(out *[]chunkRecord) ChunkFunc {
	return func(index int, text []byte, billed int) error {
		*out = append(*out, chunkRecord{index, string(text), billed})
		return nil
	}
}

// checkStreamed compares ChunkReader on raw (read through a reader that
// returns at most a few bytes at a time, in blocks of block bytes) with
// Chunk on the whole text after ToValidUTF8: same chunks, billed tokens,
// document tokens, split, replacements and bytes.
func checkStreamed(t *testing.T, c *Chunker, raw []byte, block int) {
	t.Helper()
	defer func(old int) { streamBlock = old }(streamBlock)
	streamBlock = block
	text, wantInvalid := ToValidUTF8(raw)
	var want, got []chunkRecord
	wantN, wantSplit, err := c.Chunk(text, collect(&want))
	if err != nil {
		t.Fatalf("Chunk: %v", err)
	}
	gotN, gotSplit, invalid, n, err := c.ChunkReader(iotest.HalfReader(bytes.NewReader(raw)), collect(&got))
	if err != nil {
		t.Fatalf("ChunkReader: %v", err)
	}
	if gotN != wantN || gotSplit != wantSplit || invalid != wantInvalid || n != int64(len(raw)) {
		t.Fatalf("ChunkReader (block %d, size %d/%d) = %d tokens, split %v, %d invalid, %d bytes; Chunk: %d, %v, %d, %d",
			block, c.Size, c.Overlap, gotN, gotSplit, invalid, n, wantN, wantSplit, wantInvalid, len(raw))
	}
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("block %d, size %d/%d: chunk %d streamed %+v, whole %+v", block, c.Size, c.Overlap, i, got[i], want[i])
			}
		}
		t.Fatalf("block %d: %d chunks streamed, %d whole", block, len(got), len(want))
	}
}

// TestChunkReaderMatchesChunk is the differential test of streaming: on
// every file of testdata/tokens and on random text with invalid UTF-8 and
// long white space runs, read in blocks of a few bytes to a few KB, the
// streamed chunks equal the whole document's.
func TestChunkReaderMatchesChunk(t *testing.T) {
	pc := defaultPieceCounter(t)
	var chunkers []*Chunker
	for _, p := range [][3]int{{512, 64, 8191}, {0, 0, 8191}, {0, 0, 50}, {7, 3, 12}, {1, 0, 4}} {
		c, err := NewChunker(pc, p[0], p[1], p[2])
		if err != nil {
			t.Fatal(err)
		}
		chunkers = append(chunkers, c)
	}
	rng := rand.New(rand.NewPCG(8, 9))
	var docs [][]byte
	err := filepath.WalkDir(filepath.Join("..", "testdata", "tokens", "corpus"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		docs = append(docs, raw)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		b := randomText(rng, 1+i*40)
		for range i % 5 { // invalid UTF-8, also split across blocks
			at := rng.IntN(len(b) + 1)
			b = slices.Insert(b, at, []byte{0xE2, 0x82, 0xFF, 0xF0, 0x9F}[:1+rng.IntN(5)]...)
		}
		docs = append(docs, b)
	}
	docs = append(docs, []byte(strings.Repeat(" ", 5000)+"x"+strings.Repeat("\n", 3000)+strings.Repeat("\t ", 700)), []byte{}, []byte{0xF0, 0x9F, 0x99})
	for i, raw := range docs {
		c := chunkers[i%len(chunkers)]
		for _, block := range []int{1, 3, 17, 256, 4096} {
			if len(raw) > 5000 && block < 256 {
				continue // keep the test fast
			}
			checkStreamed(t, c, raw, block)
		}
	}
}

// FuzzChunkReader compares ChunkReader with Chunk on arbitrary bytes.
//
//	go test ./corpus -run '^$' -fuzz FuzzChunkReader -parallel 1
func FuzzChunkReader(f *testing.F) {
	rng := rand.New(rand.NewPCG(10, 11))
	for i := range 10 {
		f.Add(randomText(rng, 10+i*30), uint8(i), uint8(i*7))
	}
	f.Add([]byte("a  1 \xe2\x82 x   \n\n  y"), uint8(3), uint8(1))
	pc := defaultPieceCounter(f)
	f.Fuzz(func(t *testing.T, raw []byte, size8, block8 uint8) {
		size := int(size8 % 40)
		overlap := 0
		if size > 1 {
			overlap = int(block8) % size
		}
		c, err := NewChunker(pc, size, overlap, max(size, 8)+int(size8%5))
		if err != nil {
			t.Fatal(err)
		}
		checkStreamed(t, c, raw, 1+int(block8)%64)
	})
}

// TestChunkReaderMemoryDoesNotGrow streams a 6 MB document, one line of
// words with no newline, and checks the text held at once stays within a
// few blocks while the counts equal Chunk's on the whole text.
func TestChunkReaderMemoryDoesNotGrow(t *testing.T) {
	pc := defaultPieceCounter(t)
	rng := rand.New(rand.NewPCG(12, 13))
	unit := bytes.ReplaceAll(randomText(rng, 1<<16), []byte("\n"), []byte(" "))
	raw := bytes.Repeat(unit, 6<<20/len(unit))
	for _, p := range [][2]int{{512, 64}, {0, 0}} {
		c, err := NewChunker(pc, p[0], p[1], 8191)
		if err != nil {
			t.Fatal(err)
		}
		wantN, _, _ := c.Chunk(raw, func(int, []byte, int) error { return nil })
		cur := &cursor{}
		n, _, _, _, err := c.chunkStream(cur, bytes.NewReader(raw), func(int, []byte, int) error { return nil })
		if err != nil || n != wantN {
			t.Fatalf("ChunkReader = %d tokens, %v; Chunk %d", n, err, wantN)
		}
		if cur.held > 4*streamBlock {
			t.Errorf("size %d: held %d bytes at once streaming a %d-byte document, want at most %d", p[0], cur.held, len(raw), 4*streamBlock)
		}
		t.Logf("size %d: %d tokens, at most %d bytes held", p[0], n, cur.held)
	}
}
