package checkpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/reembed/reembed/field"
)

func TestRowSchemaReadBack(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := writeRows(&b, []Row{makeRow("a.md", 0, 1, 8)}); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(b.Bytes()), int64(b.Len()))
	if err != nil {
		t.Fatal(err)
	}
	want := `message Row {
	required binary doc_id (STRING);
	required int32 chunk_index (INT(32,true));
	required binary chunk_sha256 (STRING);
	required binary text (STRING);
	required int32 tokens (INT(32,true));
	required binary model (STRING);
	required group embedding (LIST) {
		repeated group list {
			required float element;
		}
	}
	required int64 embedded_at (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS));
}`
	if got := f.Schema().String(); got != want {
		t.Errorf("file schema:\n%s\nwant:\n%s", got, want)
	}
	// The footer's own elements, as other readers see them.
	byName := map[string]format.SchemaElement{}
	for _, e := range f.Metadata().Schema {
		byName[e.Name] = e
	}
	if ts, ok := byName["embedded_at"].LogicalType.Value.(*format.TimestampType); !ok || !ts.IsAdjustedToUTC || ts.Unit.Value.Duration() != time.Millisecond {
		t.Errorf("embedded_at logical type = %v, want TIMESTAMP(MILLIS, UTC)", byName["embedded_at"].LogicalType.Value)
	}
	if _, ok := byName["embedding"].LogicalType.Value.(*format.ListType); !ok {
		t.Errorf("embedding logical type = %v, want LIST", byName["embedding"].LogicalType.Value)
	}
	// Snappy everywhere but the vectors, which no codec shrinks.
	for _, rg := range f.Metadata().RowGroups {
		for _, c := range rg.Columns {
			want := format.Snappy
			if c.MetaData.PathInSchema[0] == "embedding" {
				want = format.Uncompressed
			}
			if c.MetaData.Codec != want {
				t.Errorf("column %v codec %v, want %v", c.MetaData.PathInSchema, c.MetaData.Codec, want)
			}
		}
	}
}

func TestWriterRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	rows := corpusRows(5, 5, 16) // 25 rows: parts of 10, 10, 5
	var committed []PartInfo
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(16), PartRows: 10,
		OnCommit: func(p PartInfo) { committed = append(committed, p) }})
	if !w.Recovery().ManifestWritten {
		t.Error("new root: manifest not written")
	}
	for i := range rows {
		if err := w.Add(ctx, rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.Buffered(); got != 5 {
		t.Errorf("Buffered = %d, want 5", got)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(ctx, rows[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}
	if got, want := listDir(t, root), []string{"manifest.json", "part-000001.parquet", "part-000002.parquet", "part-000003.parquet"}; !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if len(committed) != 3 || committed[2].Rows != 5 || committed[0].Size == 0 {
		t.Errorf("OnCommit got %+v", committed)
	}
	parts := readAllParts(t, root)
	var got []Row
	for _, name := range sortedNames(parts) {
		got = append(got, parts[name]...)
	}
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, wrote %d", len(got), len(rows))
	}
	for i := range rows {
		want := rows[i]
		want.EmbeddedAt = want.EmbeddedAt.Truncate(time.Millisecond)
		if !rowsEqual(got[i], want) {
			t.Fatalf("row %d:\n got %+v\nwant %+v", i, got[i], want)
		}
	}

	ix, err := Scan(ctx, NewDir(root), ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() != len(rows) || ix.Rows() != len(rows) || len(ix.Parts()) != 3 {
		t.Errorf("index: %d keys, %d rows, %d parts", ix.Len(), ix.Rows(), len(ix.Parts()))
	}
	e, ok := ix.Lookup(rows[12].Key())
	if !ok || e.SHA256 != rows[12].ChunkSHA256 || e.Part != "part-000002.parquet" || !e.EmbeddedAt.Equal(rows[12].EmbeddedAt) {
		t.Errorf("Lookup(%v) = %+v, %v", rows[12].Key(), e, ok)
	}
	if !ix.Has(rows[3].Key(), rows[3].ChunkSHA256) || ix.Has(rows[3].Key(), shaHex("other")) ||
		!ix.Has(rows[3].Key(), strings.ToUpper(rows[3].ChunkSHA256)) || ix.Has(rows[3].Key(), rows[3].ChunkSHA256[1:]+"g") {
		t.Error("Has disagrees with the rows written")
	}
	m, err := ReadManifest(ctx, NewDir(root), Shard{})
	if err != nil || m.FormatVersion != FormatVersion || m.Model != testModel || m.Chunking.ChunkTokens != 512 {
		t.Errorf("manifest %+v, %v", m, err)
	}
}

func rowsEqual(a, b Row) bool {
	return a.DocID == b.DocID && a.ChunkIndex == b.ChunkIndex && a.ChunkSHA256 == b.ChunkSHA256 &&
		a.Text == b.Text && a.Tokens == b.Tokens && a.Model == b.Model &&
		slices.Equal(a.Embedding, b.Embedding) && a.EmbeddedAt.Equal(b.EmbeddedAt) && a.EmbeddedAt.Location() == time.UTC
}

func TestResumeContinuesNumbering(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	rows := corpusRows(2, 10, 4)
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(4), PartRows: 7})
	if err := w.Add(ctx, rows[:10]...); err != nil {
		t.Fatal(err)
	}
	// No Close: the 3 buffered rows are what a crash loses.
	w = openWriter(t, NewDir(root), Options{Manifest: testManifest(4), PartRows: 7})
	if w.Recovery().ManifestWritten {
		t.Error("resume rewrote the manifest")
	}
	ix := w.Index()
	var todo []Row
	for _, r := range rows {
		if !ix.Has(r.Key(), r.ChunkSHA256) {
			todo = append(todo, r)
		}
	}
	if len(todo) != 13 {
		t.Fatalf("resume would embed %d chunks, want 13 (20 - 7 committed)", len(todo))
	}
	if err := w.Add(ctx, todo...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := listDir(t, root), []string{"manifest.json", "part-000001.parquet", "part-000002.parquet", "part-000003.parquet"}; !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	ix, err := Scan(ctx, NewDir(root), ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := ix.Coverage(expectedOf(rows)); !r.Complete() || r.Present != 20 || r.Duplicates != 0 {
		t.Errorf("coverage %+v", r)
	}
}

func TestManifestMismatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		field  string
		change func(*Manifest)
	}{
		{"model", func(m *Manifest) { m.Model = "text-embedding-3-large" }},
		{"dimensions", func(m *Manifest) { m.Dimensions = 256 }},
		{"encoding", func(m *Manifest) { m.Encoding = "o200k_base" }},
		{"chunking", func(m *Manifest) { m.Chunking.ChunkOverlap = 0 }},
		{"chunking", func(m *Manifest) { m.Chunking.ChunkTokens = 256 }},
		{"plain_text", func(m *Manifest) { m.PlainText = true }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			w := openWriter(t, NewDir(root), Options{Manifest: testManifest(8)})
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			want := testManifest(8)
			tt.change(&want)
			_, err := Open(ctx, NewDir(root), Options{Manifest: want})
			var mm *MismatchError
			if !errors.Is(err, ErrManifestMismatch) || !errors.As(err, &mm) || mm.Field != tt.field {
				t.Fatalf("Open with other %s: %v, want a MismatchError naming %s", tt.field, err, tt.field)
			}
			if !mm.Forceable() {
				// A checkpoint never mixes models or dimensions: Force does
				// not override it, and the message names the safe way out.
				msg := field.Render(err, func(f string) string { return "--" + f })
				if !strings.Contains(msg, tt.field) || strings.Contains(msg, "force") || !strings.Contains(msg, "another --out_dir") {
					t.Errorf("message %q: want the field and another {out_dir} (--out), never {force}", msg)
				}
				if _, err := Open(ctx, NewDir(root), Options{Manifest: want, Force: true}); !errors.Is(err, ErrManifestMismatch) {
					t.Fatalf("Open with Force and another %s: %v, want refused", tt.field, err)
				}
				m, err := ReadManifest(ctx, NewDir(root), Shard{})
				if err != nil || Compare("manifest.json", m, testManifest(8)) != nil {
					t.Errorf("refused Open changed the manifest: %+v, %v", m, err)
				}
				return
			}
			if msg := field.Render(err, func(f string) string { return "--" + f }); !strings.Contains(msg, tt.field) || !strings.Contains(msg, "--force") {
				t.Errorf("message %q does not name the field and {force}", msg)
			}

			w, err = Open(ctx, NewDir(root), Options{Manifest: want, Force: true})
			if err != nil {
				t.Fatalf("Open with Force: %v", err)
			}
			if len(w.Recovery().Overridden) != 1 || !w.Recovery().ManifestWritten {
				t.Errorf("recovery %+v", w.Recovery())
			}
			m, err := ReadManifest(ctx, NewDir(root), Shard{})
			if err != nil {
				t.Fatal(err)
			}
			if Compare("manifest.json", m, want) != nil {
				t.Errorf("forced manifest not rewritten to the job's spec: %+v", m)
			}
			if _, err := Open(ctx, NewDir(root), Options{Manifest: want}); err != nil {
				t.Errorf("resume after forced rewrite: %v", err)
			}
		})
	}
	t.Run("informational fields may differ", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		openWriter(t, NewDir(root), Options{Manifest: testManifest(8)})
		m := testManifest(8)
		m.CorpusRoots = []string{"/elsewhere"}
		m.ReembedVersion = "v9"
		if _, err := Open(ctx, NewDir(root), Options{Manifest: m}); err != nil {
			t.Errorf("Open: %v", err)
		}
	})
	t.Run("newer format refused even with Force", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		os.WriteFile(filepath.Join(root, "manifest.json"), []byte(`{"format_version": 99, "model": "x"}`), 0o644)
		_, err := Open(ctx, NewDir(root), Options{Manifest: testManifest(8), Force: true})
		if !errors.Is(err, ErrUnsupportedFormat) {
			t.Errorf("Open: %v, want ErrUnsupportedFormat", err)
		}
	})
	t.Run("another shard's manifest is checked too", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		other := testManifest(8)
		other.Model = "other"
		other.Shard = Shard{Index: 1, Count: 2}
		openWriter(t, NewDir(root), Options{Manifest: other})
		mine := testManifest(8)
		mine.Shard = Shard{Index: 0, Count: 2}
		_, err := Open(ctx, NewDir(root), Options{Manifest: mine})
		var mm *MismatchError
		if !errors.As(err, &mm) || mm.File != "shard-0001-of-0002/manifest.json" || mm.Field != "model" {
			t.Errorf("Open: %v, want a model mismatch in shard 1's manifest", err)
		}
	})
}

func TestInvalidRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := openWriter(t, NewDir(t.TempDir()), Options{Manifest: testManifest(8)})
	good := makeRow("a", 0, 1, 8)
	tests := map[string]func(*Row){
		"empty doc_id":  func(r *Row) { r.DocID = "" },
		"short sha":     func(r *Row) { r.ChunkSHA256 = "abc" },
		"upper hex sha": func(r *Row) { r.ChunkSHA256 = strings.ToUpper(r.ChunkSHA256) },
		"other model":   func(r *Row) { r.Model = "m2" },
		"dimensions":    func(r *Row) { r.Embedding = r.Embedding[:7] },
		"no time":       func(r *Row) { r.EmbeddedAt = time.Time{} },
		"NaN":           func(r *Row) { r.Embedding = slices.Clone(r.Embedding); r.Embedding[2] = float32(math.NaN()) },
		"+Inf":          func(r *Row) { r.Embedding = slices.Clone(r.Embedding); r.Embedding[7] = float32(math.Inf(1)) },
		"zero vector":   func(r *Row) { r.Embedding = make([]float32, 8) },
		"doc_id UTF-8":  func(r *Row) { r.DocID = "bad\xff.txt" },
		"text UTF-8":    func(r *Row) { r.Text = "caf\xc3" },
	}
	for name, change := range tests {
		r := good
		change(&r)
		if err := w.Add(ctx, good, r); !errors.Is(err, ErrInvalidRow) {
			t.Errorf("%s: Add = %v, want ErrInvalidRow", name, err)
		}
		if w.Buffered() != 0 {
			t.Fatalf("%s: a rejected Add buffered %d rows", name, w.Buffered())
		}
	}
}

func TestOpenRemovesOwnTempFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	m0, m1 := testManifest(4), testManifest(4)
	m0.Shard, m1.Shard = Shard{0, 2}, Shard{1, 2}
	for _, m := range []Manifest{m0, m1} {
		w := openWriter(t, NewDir(root), Options{Manifest: m, PartRows: 2})
		if err := w.Add(ctx, corpusRows(1, 2, 4)...); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{
		"shard-0000-of-0002/part-000002.parquet.tmp-123",
		"shard-0000-of-0002/manifest.json.tmp-9",
		"shard-0001-of-0002/part-000002.parquet.tmp-456", // shard 1 may be committing right now
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte("half a part"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w := openWriter(t, NewDir(root), Options{Manifest: m0, PartRows: 2})
	want := []string{"shard-0000-of-0002/manifest.json.tmp-9", "shard-0000-of-0002/part-000002.parquet.tmp-123"}
	if got := w.Recovery().RemovedTemp; !slices.Equal(sorted(got), want) {
		t.Errorf("RemovedTemp %v, want %v", got, want)
	}
	if got, want := listDir(t, root), []string{
		"shard-0000-of-0002/manifest.json", "shard-0000-of-0002/part-000001.parquet",
		"shard-0001-of-0002/manifest.json", "shard-0001-of-0002/part-000001.parquet",
		"shard-0001-of-0002/part-000002.parquet.tmp-456",
	}; !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	if w.Index().Len() != 2 { // both shards' parts are read (same docs, same keys)
		t.Errorf("index has %d keys, want 2", w.Index().Len())
	}
	// The removed temp file's number is not reused.
	if err := w.Add(ctx, corpusRows(1, 2, 4)...); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "shard-0000-of-0002/part-000003.parquet")); err != nil {
		t.Errorf("next part after a removed part-000002 temp: %v", err)
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func TestUnreadablePartsMovedAside(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	rows := corpusRows(4, 5, 8) // 20 rows, 4 parts of 5
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(8), PartRows: 5})
	if err := w.Add(ctx, rows...); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(root, "part-000004.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := map[string][]byte{
		"part-000001.parquet": good[:len(good)/2],             // truncated: no footer
		"part-000002.parquet": []byte("PAR1 this is garbage"), // garbage
		"part-000003.parquet": {},                             // empty
	}
	for name, b := range corrupt {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A part of someone else's schema is unreadable as a checkpoint part too.
	var foreign bytes.Buffer
	type other struct {
		DocID int64 `parquet:"doc_id"`
	}
	pw := parquet.NewGenericWriter[other](&foreign)
	pw.Write([]other{{1}})
	pw.Close()
	os.WriteFile(filepath.Join(root, "part-000005.parquet"), foreign.Bytes(), 0o644)

	// Scan reports and changes nothing.
	ix, err := Scan(ctx, NewDir(root), ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ix.Unreadable()); n != 4 {
		t.Errorf("Scan: %d unreadable parts, want 4: %v", n, ix.Unreadable())
	}
	if files := listDir(t, root); len(files) != 6 {
		t.Errorf("Scan changed the directory: %v", files)
	}

	w = openWriter(t, NewDir(root), Options{Manifest: testManifest(8), PartRows: 5})
	bad := w.Recovery().Unreadable
	var names, moved []string
	for _, b := range bad {
		names = append(names, b.Name)
		moved = append(moved, b.MovedTo)
		if b.Err == nil || !errors.Is(b.Err, errCorrupt) {
			t.Errorf("%s: reason %v", b.Name, b.Err)
		}
	}
	if want := []string{"part-000001.parquet", "part-000002.parquet", "part-000003.parquet", "part-000005.parquet"}; !slices.Equal(names, want) {
		t.Errorf("unreadable %v, want %v", names, want)
	}
	if want := []string{"part-000001.parquet.corrupt", "part-000002.parquet.corrupt", "part-000003.parquet.corrupt", "part-000005.parquet.corrupt"}; !slices.Equal(moved, want) {
		t.Errorf("moved to %v, want %v", moved, want)
	}
	r := w.Index().Coverage(expectedOf(rows))
	if r.Present != 5 || r.Missing != 15 || r.UnreadableParts != 4 || r.Complete() {
		t.Errorf("coverage %+v: want the 5 rows of part 4 present, 15 missing", r)
	}
	// The rebuild embeds the missing chunks again; numbering continues past
	// the parts moved aside.
	var todo []Row
	for _, r := range rows {
		if !w.Index().Has(r.Key(), r.ChunkSHA256) {
			todo = append(todo, r)
		}
	}
	if err := w.Add(ctx, todo...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ix, err = Scan(ctx, NewDir(root), ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := ix.Coverage(expectedOf(rows)); !r.Complete() || r.UnreadableParts != 0 || r.Duplicates != 0 {
		t.Errorf("after re-embedding: %+v", r)
	}
	if got := ix.Parts(); got[0].Name != "part-000004.parquet" || got[1].Name != "part-000006.parquet" {
		t.Errorf("parts %v: want the new ones numbered from 6", got)
	}
	// Moving aside again picks a free name.
	os.WriteFile(filepath.Join(root, "part-000001.parquet"), []byte("garbage"), 0o644)
	w = openWriter(t, NewDir(root), Options{Manifest: testManifest(8)})
	if got := w.Recovery().Unreadable; len(got) != 1 || got[0].MovedTo != "part-000001.parquet.corrupt-2" {
		t.Errorf("second corrupt part-000001: %+v", got)
	}
}

func TestSupersedeRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(4), PartRows: 100})
	a1, b1 := makeRow("a", 0, 1, 4), makeRow("b", 0, 1, 4)
	a2 := makeRow("a", 0, 2, 4)                   // text changed
	a2.EmbeddedAt = a1.EmbeddedAt.Add(-time.Hour) // even with a clock that stepped back
	must(t, w.Add(ctx, a1, b1))
	must(t, w.Flush(ctx))
	must(t, w.Add(ctx, a2, b1)) // b written twice, same text
	must(t, w.Close(ctx))

	ix, err := Scan(ctx, NewDir(root), ScanOptions{})
	must(t, err)
	if e, _ := ix.Lookup(a1.Key()); e.SHA256 != a2.ChunkSHA256 || e.Part != "part-000002.parquet" {
		t.Errorf("a: winner %+v, want the row of part 2 (highest part number in the directory)", e)
	}
	if got := ix.Superseded(); len(got) != 1 || got[0] != (ShadowedRow{Key: a1.Key(), SHA256: a1.ChunkSHA256, Part: "part-000001.parquet"}) {
		t.Errorf("Superseded = %+v", got)
	}
	if got := ix.Duplicates(); len(got) != 1 || got[0].Key != b1.Key() || got[0].Part != "part-000001.parquet" {
		t.Errorf("Duplicates = %+v", got)
	}
	r := ix.Coverage(expectedOf([]Row{a2, b1}))
	if r.Present != 2 || r.Superseded != 1 || r.Duplicates != 1 || !r.Complete() {
		t.Errorf("coverage against the new text: %+v", r)
	}
	r = ix.Coverage(expectedOf([]Row{a1, b1}))
	if r.Stale != 1 || r.StaleKeys[0] != a1.Key() || r.Complete() {
		t.Errorf("coverage against the old text: %+v", r)
	}
}

func TestSupersedeAcrossShards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	// The same key written by the unsharded run and by shard 1 of 2 (shard
	// count changed between runs): the later embedded_at wins, whatever the
	// directory; on a tie the directory that sorts last wins.
	old, newer := makeRow("a", 0, 1, 4), makeRow("a", 0, 2, 4)
	newer.EmbeddedAt = old.EmbeddedAt.Add(time.Second)
	tieOld, tieNew := makeRow("t", 0, 1, 4), makeRow("t", 0, 2, 4)
	tieNew.EmbeddedAt = tieOld.EmbeddedAt
	// c: shard 1's own winner (its last part, whose clock stepped back) is
	// compared with the root's, not the row it replaced.
	cRoot, cShard1, cShard2 := makeRow("c", 0, 1, 4), makeRow("c", 0, 2, 4), makeRow("c", 0, 3, 4)
	cRoot.EmbeddedAt = testTime.Add(14 * time.Second)
	cShard1.EmbeddedAt = testTime.Add(15 * time.Second)
	cShard2.EmbeddedAt = testTime.Add(12 * time.Second)
	m1 := testManifest(4)
	m1.Shard = Shard{1, 2}
	w1 := openWriter(t, NewDir(root), Options{Manifest: m1})
	must(t, w1.Add(ctx, old, tieNew, cShard1))
	must(t, w1.Flush(ctx))
	must(t, w1.Add(ctx, cShard2))
	must(t, w1.Close(ctx))
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(4)})
	must(t, w.Add(ctx, newer, tieOld, cRoot))
	must(t, w.Close(ctx))

	ix, err := Scan(ctx, NewDir(root), ScanOptions{})
	must(t, err)
	if e, _ := ix.Lookup(old.Key()); e.SHA256 != newer.ChunkSHA256 || e.Part != "part-000001.parquet" {
		t.Errorf("a: winner %+v, want the later embedded_at (root part)", e)
	}
	if e, _ := ix.Lookup(tieOld.Key()); e.SHA256 != tieNew.ChunkSHA256 || e.Part != "shard-0001-of-0002/part-000001.parquet" {
		t.Errorf("t: winner %+v, want the directory sorting last (shard-0001-of-0002)", e)
	}
	if e, _ := ix.Lookup(cRoot.Key()); e.SHA256 != cRoot.ChunkSHA256 {
		t.Errorf("c: winner %+v, want the root's row (14s) over shard 1's winner (12s)", e)
	}
	if n := len(ix.Superseded()); n != 4 {
		t.Errorf("%d superseded rows, want 4: %+v", n, ix.Superseded())
	}
}

func TestCoverage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	rows := corpusRows(3, 4, 4) // 12 chunks
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(4)})
	must(t, w.Add(ctx, rows[:8]...))              // 8 checkpointed
	must(t, w.Add(ctx, makeRow("gone", 0, 1, 4))) // a document deleted since
	must(t, w.Close(ctx))
	ix, err := Scan(ctx, NewDir(root), ScanOptions{})
	must(t, err)
	corpus := slices.Clone(rows)
	corpus[1] = makeRow(rows[1].DocID, 1, 2, 4) // edited since
	r := ix.Coverage(expectedOf(corpus))
	want := Report{Expected: 12, Present: 7, Missing: 4, Stale: 1, Extra: 1,
		MissingKeys: keysOf(rows[8:]), StaleKeys: []Key{rows[1].Key()}, ExtraKeys: []Key{{"gone", 0}}}
	if !reportsEqual(r, want) {
		t.Errorf("coverage\n got %+v\nwant %+v", r, want)
	}
	if r.Complete() {
		t.Error("Complete with missing chunks")
	}
	if r := ix.Coverage(expectedOf(rows[:8])); !r.Complete() || r.Extra != 1 {
		t.Errorf("coverage of the checkpointed chunks: %+v", r)
	}
}

func reportsEqual(a, b Report) bool {
	return a.Expected == b.Expected && a.Present == b.Present && a.Missing == b.Missing && a.Stale == b.Stale &&
		a.Extra == b.Extra && a.Duplicates == b.Duplicates && a.Superseded == b.Superseded &&
		slices.Equal(a.MissingKeys, b.MissingKeys) && slices.Equal(a.StaleKeys, b.StaleKeys) && slices.Equal(a.ExtraKeys, b.ExtraKeys)
}

func TestScanMissingRoot(t *testing.T) {
	t.Parallel()
	_, err := Scan(context.Background(), NewDir(filepath.Join(t.TempDir(), "nope")), ScanOptions{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Scan of a missing root: %v, want ErrNotExist", err)
	}
}

func TestShardNames(t *testing.T) {
	t.Parallel()
	if got := PartName(Shard{}, 42); got != "part-000042.parquet" {
		t.Errorf("PartName unsharded = %q", got)
	}
	if got := PartName(Shard{Index: 2, Count: 4}, 1); got != "shard-0002-of-0004/part-000001.parquet" {
		t.Errorf("PartName shard 2/4 = %q", got)
	}
	for _, s := range []Shard{{-1, 2}, {2, 2}, {1, 0}, {0, -1}} {
		if s.Validate() == nil {
			t.Errorf("shard %+v validates", s)
		}
		if _, err := Open(context.Background(), NewDir(t.TempDir()), Options{Manifest: Manifest{Model: "m", Shard: s}}); err == nil {
			t.Errorf("Open with shard %+v succeeded", s)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestHasDoesNotAllocate(t *testing.T) { // not parallel: AllocsPerRun
	ctx := context.Background()
	store := NewDir(t.TempDir())
	r := makeRow("a", 0, 1, 4)
	w := openWriter(t, store, Options{Manifest: testManifest(4)})
	must(t, w.Add(ctx, r))
	must(t, w.Close(ctx))
	ix, err := Scan(ctx, store, ScanOptions{})
	must(t, err)
	if n := testing.AllocsPerRun(100, func() { ix.Has(r.Key(), r.ChunkSHA256) }); n != 0 {
		t.Errorf("Has allocates %v times per call, want 0 (it runs once per chunk on resume)", n)
	}
}

// TestKeyTableCollision forces keys onto one 64-bit hash: each must stay
// findable with its own row, and a repeated key must be found, not added.
func TestKeyTableCollision(t *testing.T) {
	t.Parallel()
	tab := newKeyTable(maphash.MakeSeed(), 0)
	keys := []Key{{"a", 0}, {"b", 1}, {"c", 2}}
	for i, k := range keys {
		if _, ok := tab.find(7, k); ok {
			t.Fatalf("found %v before adding it", k)
		}
		if _, had := tab.upsert(7, k, entry{part: int32(i)}); had {
			t.Fatalf("upsert(%v) found a key never added", k)
		}
	}
	for i, k := range keys {
		j, ok := tab.find(7, k)
		if !ok || tab.entries[j].part != int32(i) {
			t.Errorf("find(%v) = %d, %v; want the entry of part %d", k, j, ok, i)
		}
		if j2, had := tab.upsert(7, k, entry{part: 99}); !had || j2 != j {
			t.Errorf("upsert of existing %v = %d, %v; want %d, true", k, j2, had, j)
		}
	}
	if len(tab.entries) != 3 {
		t.Errorf("%d entries, want 3", len(tab.entries))
	}
}

func TestHashIndexGrows(t *testing.T) {
	t.Parallel()
	x := newHashIndex(0)
	for i := range 10000 {
		h := uint64(i) * 0x100000001 // many share low bits
		if _, had := x.getOrPut(h, int32(i)); had {
			t.Fatalf("getOrPut(%d) had it already", i)
		}
	}
	for i := range 10000 {
		if v, ok := x.get(uint64(i) * 0x100000001); !ok || v != int32(i) {
			t.Fatalf("get(%d) = %d, %v", i, v, ok)
		}
	}
	if _, ok := x.get(12345); ok {
		t.Error("found a hash never stored")
	}
}

func TestFlushAfterCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	root := t.TempDir()
	w := openWriter(t, NewDir(root), Options{Manifest: testManifest(4)})
	must(t, w.Add(ctx, corpusRows(1, 3, 4)...))
	cancel() // SIGTERM: the rebuild's context is cancelled, the last flush must land
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close after cancel: %v", err)
	}
	if parts := readAllParts(t, root); len(parts["part-000001.parquet"]) != 3 {
		t.Errorf("parts after a flush on a cancelled context: %v", sortedNames(parts))
	}
}

func TestBadPartJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(BadPart{Name: "part-000001.parquet", Err: errors.New("truncated"), MovedTo: "part-000001.parquet.corrupt"})
	must(t, err)
	if want := `{"name":"part-000001.parquet","error":"truncated","moved_to":"part-000001.parquet.corrupt"}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

// vanishingStore lists a part that is gone when it is opened, as when another
// process moves it aside between the listing and the read.
type vanishingStore struct{ Store }

func (s vanishingStore) List(ctx context.Context) ([]FileInfo, error) {
	files, err := s.Store.List(ctx)
	return append(files, FileInfo{Name: "part-000009.parquet", Size: 100}), err
}

func TestScanSkipsVanishedPart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := NewDir(t.TempDir())
	w := openWriter(t, dir, Options{Manifest: testManifest(4)})
	must(t, w.Add(ctx, corpusRows(1, 2, 4)...))
	must(t, w.Close(ctx))
	ix, err := Scan(ctx, vanishingStore{dir}, ScanOptions{})
	must(t, err)
	if ix.Len() != 2 || len(ix.Unreadable()) != 0 {
		t.Errorf("Scan = %v keys, unreadable %v, %v; want the 2 keys of the part that exists", ix.Len(), ix.Unreadable(), err)
	}
}
