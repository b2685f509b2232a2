package corpus_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"

	"github.com/reembed/reembed/corpus"
)

// skipsOf maps each skip's path to its reason.
func skipsOf(st *corpus.Stats) map[string]string {
	m := map[string]string{}
	for _, s := range st.Skipped {
		m[s.Path] = s.Reason
	}
	return m
}

func TestJSONL(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("long ", 40_000) // a 200 KB line
	writeTree(t, dir, map[string]string{
		"r.jsonl": `{"id":"a","text":"hello"}
{"id":7,"text":"numeric id"}
{"text":"no id"}

not json
{"id":"x","body":"no text field"}
{"id":"y","text":42}
{"id":"u","text":"bad ` + "\xff" + ` byte"}
[1,2]
{"id":"long","text":"` + long + `"}
{"id":"last","text":"no trailing newline"}`,
		"custom.ndjson": `{"key":"k1","body":"custom fields","text":"not this"}
{"body":"no key"}
`,
	})
	path := filepath.Join(dir, "r.jsonl")
	docs, st, err := readCorpus(t, []string{filepath.Join(dir, "r.jsonl")}, corpus.Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OneDocumentPerRecord", func(t *testing.T) {
		want := []string{"r.jsonl#a", "r.jsonl#7", "r.jsonl#L3", "r.jsonl#u", "r.jsonl#long", "r.jsonl#last"}
		if got := docIDs(docs); !slices.Equal(got, want) {
			t.Errorf("documents %q, want %q", got, want)
		}
		for id, text := range map[string]string{"r.jsonl#a": "hello", "r.jsonl#L3": "no id", "r.jsonl#u": "bad \uFFFD byte", "r.jsonl#long": long, "r.jsonl#last": "no trailing newline"} {
			if got := docText(t, docs, id); got != text {
				t.Errorf("%s = %.40q, want %.40q", id, got, text)
			}
		}
	})
	t.Run("InvalidUTF8RecordCounted", func(t *testing.T) {
		if st.InvalidUTF8Documents != 1 || !slices.Equal(st.InvalidUTF8Examples, []string{"r.jsonl#u"}) {
			t.Errorf("invalid UTF-8: %d %q, want 1 [r.jsonl#u]", st.InvalidUTF8Documents, st.InvalidUTF8Examples)
		}
	})
	t.Run("BadLinesSkippedWithLineAndReason", func(t *testing.T) {
		want := map[string]string{
			path + ":5": "not a JSON object",
			path + ":6": `no string field "text"`,
			path + ":7": `no string field "text"`,
			path + ":9": "not a JSON object",
		}
		got := skipsOf(st)
		if len(got) != len(want) {
			t.Errorf("skipped %v, want %d lines", st.Skipped, len(want))
		}
		for p, reason := range want {
			if !strings.Contains(got[p], reason) {
				t.Errorf("skip %s: reason %q, want %q", p, got[p], reason)
			}
		}
	})
	t.Run("FieldsConfigurable", func(t *testing.T) {
		docs, st, err := readCorpus(t, []string{filepath.Join(dir, "custom.ndjson")}, corpus.Options{TextField: "body", IDField: "key"}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := docIDs(docs); !slices.Equal(got, []string{"custom.ndjson#k1", "custom.ndjson#L2"}) {
			t.Errorf("documents %q", got)
		}
		if got := docText(t, docs, "custom.ndjson#k1"); got != "custom fields" {
			t.Errorf("text = %q, want the body field", got)
		}
		if len(st.Skipped) != 0 {
			t.Errorf("skipped %v", st.Skipped)
		}
	})
	t.Run("StrictBadLineIsError", func(t *testing.T) {
		_, _, err := readCorpus(t, []string{path}, corpus.Options{Strict: true}, 1)
		if !errors.Is(err, corpus.ErrSkipped) || !strings.Contains(err.Error(), path+":5") {
			t.Errorf("err = %v, want ErrSkipped naming %s:5", err, path)
		}
	})
	t.Run("PlainTextIsOneDocument", func(t *testing.T) {
		docs, _, err := readCorpus(t, []string{path}, corpus.Options{PlainText: true}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := docIDs(docs); !slices.Equal(got, []string{"r.jsonl"}) {
			t.Errorf("documents %q, want [r.jsonl]", got)
		}
	})
}

func TestCSV(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"a.csv": "id,title,text\n" +
			"1,t1,first\n" +
			"2,t2,\"quoted, with comma\nand newline\"\n" +
			"3,short\n" +
			",t4,no id\n" +
			"5,t5,bad \xff byte\n",
		"bom.csv":    "\uFEFFtext,id\nbom text,b1\n",
		"nocol.csv":  "name,body\nx,y\n",
		"empty.csv":  "",
		"custom.csv": "key;ignored\n", // one column: no "body"
		"t.tsv":      "id\ttext\nt1\ttab separated, with comma\n",
		"fields.csv": "key,body\nk1,custom\n",
	})
	docs, st, err := readCorpus(t, []string{dir}, corpus.Options{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OneDocumentPerRow", func(t *testing.T) {
		for id, text := range map[string]string{
			"a.csv#1":    "first",
			"a.csv#2":    "quoted, with comma\nand newline",
			"a.csv#R4":   "no id",
			"a.csv#5":    "bad \uFFFD byte",
			"bom.csv#b1": "bom text",
			"t.tsv#t1":   "tab separated, with comma",
		} {
			if got := docText(t, docs, id); got != text {
				t.Errorf("%s = %q, want %q", id, got, text)
			}
		}
		if len(docs) != 6 {
			t.Errorf("documents %q, want 6", docIDs(docs))
		}
	})
	t.Run("BadRowsAndFilesSkippedWithReason", func(t *testing.T) {
		got := skipsOf(st)
		want := map[string]string{
			filepath.Join(dir, "a.csv") + ":5": `row has no column "text"`,
			filepath.Join(dir, "nocol.csv"):    `no column "text" (columns: name, body)`,
			filepath.Join(dir, "empty.csv"):    "no CSV header row",
			filepath.Join(dir, "custom.csv"):   `no column "text"`,
			filepath.Join(dir, "fields.csv"):   `no column "text"`,
		}
		for p, reason := range want {
			if !strings.Contains(got[p], reason) {
				t.Errorf("skip %s: reason %q, want %q", p, got[p], reason)
			}
		}
		if len(got) != len(want) {
			t.Errorf("skipped %v, want %d", st.Skipped, len(want))
		}
	})
	t.Run("FieldsConfigurable", func(t *testing.T) {
		docs, _, err := readCorpus(t, []string{filepath.Join(dir, "fields.csv")}, corpus.Options{TextField: "body", IDField: "key"}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := docText(t, docs, "fields.csv#k1"); got != "custom" {
			t.Errorf("fields.csv#k1 = %q", got)
		}
	})
}

type parquetRow struct {
	ID   string  `parquet:"id"`
	Text *string `parquet:"text,optional"`
	Body string  `parquet:"body"`
}

func TestParquet(t *testing.T) {
	dir := t.TempDir()
	str := func(s string) *string { return &s }
	rows := []parquetRow{
		{ID: "p1", Text: str("first row"), Body: "b1"},
		{ID: "p2", Text: nil, Body: "b2"},
		{ID: "", Text: str("bad \xff byte"), Body: "b3"},
	}
	// Enough rows for several row groups and read batches.
	for i := range 300 {
		rows = append(rows, parquetRow{ID: fmt.Sprintf("n%03d", i), Text: str(fmt.Sprintf("row %d", i)), Body: "b"})
	}
	path := filepath.Join(dir, "t.parquet")
	if err := parquet.WriteFile(path, rows, parquet.PageBufferSize(1024), parquet.MaxRowsPerRowGroup(64)); err != nil {
		t.Fatal(err)
	}
	docs, st, err := readCorpus(t, []string{dir}, corpus.Options{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OneDocumentPerRow", func(t *testing.T) {
		if len(docs) != 302 {
			t.Errorf("%d documents, want 302", len(docs))
		}
		for id, text := range map[string]string{"t.parquet#p1": "first row", "t.parquet#R3": "bad \uFFFD byte", "t.parquet#n299": "row 299"} {
			if got := docText(t, docs, id); got != text {
				t.Errorf("%s = %q, want %q", id, got, text)
			}
		}
		if docs[len(docs)-1].ID != "t.parquet#n299" {
			t.Errorf("last document %s, want rows in file order", docs[len(docs)-1].ID)
		}
		if st.InvalidUTF8Documents != 1 {
			t.Errorf("InvalidUTF8Documents = %d, want 1", st.InvalidUTF8Documents)
		}
	})
	t.Run("NullTextSkipped", func(t *testing.T) {
		if r := skipsOf(st)[path+":row 2"]; !strings.Contains(r, `null column "text"`) {
			t.Errorf("skips %v, want row 2 with a null text", st.Skipped)
		}
	})
	t.Run("ColumnsConfigurable", func(t *testing.T) {
		docs, _, err := readCorpus(t, []string{path}, corpus.Options{TextField: "body", IDField: "text"}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := docText(t, docs, "t.parquet#first row"); got != "b1" {
			t.Errorf("body of the row with text id = %q, want b1", got)
		}
		if got := docText(t, docs, "t.parquet#R2"); got != "b2" {
			t.Errorf("row with a null id: %q, want b2 named by its row", got)
		}
	})
	t.Run("MissingColumnSkipsFile", func(t *testing.T) {
		_, st, err := readCorpus(t, []string{path}, corpus.Options{TextField: "nope"}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if r := skipsOf(st)[path]; !strings.Contains(r, `no column "nope"`) {
			t.Errorf("skips %v, want the file skipped for its missing column", st.Skipped)
		}
	})
	t.Run("NotParquetSkipped", func(t *testing.T) {
		writeTree(t, dir, map[string]string{"bad/x.parquet": "not parquet"})
		_, st, err := readCorpus(t, []string{filepath.Join(dir, "bad")}, corpus.Options{}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if r := skipsOf(st)[filepath.Join(dir, "bad", "x.parquet")]; !strings.Contains(r, "not a readable Parquet file") {
			t.Errorf("skips %v", st.Skipped)
		}
	})
}

// TestKeepAppliesToEveryFormat: a Keep filter (what shards use) decides each
// document of every format, so no document is read by two shards.
func TestKeepAppliesToEveryFormat(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"a.txt": "a", "b.md": "b", "c.html": "<p>c</p>", "d.jsonl": "{\"id\":\"1\",\"text\":\"d1\"}\n{\"id\":\"2\",\"text\":\"d2\"}\n",
		"e.csv": "id,text\n1,e1\n2,e2\n",
	})
	all, _, err := readCorpus(t, []string{dir}, corpus.Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var union []string
	for shard := range 2 {
		keep := func(id string) bool { return slices.Index(docIDs(all), id)%2 == shard }
		docs, _, err := readCorpus(t, []string{dir}, corpus.Options{Keep: keep}, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			if !keep(d.ID) {
				t.Errorf("shard %d read %s, which Keep rejects", shard, d.ID)
			}
		}
		union = append(union, docIDs(docs)...)
	}
	slices.Sort(union)
	want := slices.Sorted(slices.Values(docIDs(all)))
	if !slices.Equal(union, want) {
		t.Errorf("shards read %q together, want each of %q once", union, want)
	}
}

// FuzzRecords reads arbitrary bytes as a JSONL, CSV, TSV and HTML file: no
// panic, and every document is valid UTF-8.
func FuzzRecords(f *testing.F) {
	for _, s := range []string{
		"id,text\n1,a\n", "text\n\"unterminated\n", "a,\"b\"c\",d\n", "text\r\n\"x\r\ny\"\r\n", "\"\n", ",,,\n\n\n",
		"{\"text\":\"a\"}\n", "{\"text\":\"\\ud800\"}\n", "[]\n{}\nnull\n", "<p>a</p>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		for _, name := range []string{"f.csv", "f.tsv", "f.jsonl", "f.html"} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		docs, _, err := readCorpus(t, []string{dir}, corpus.Options{}, 1)
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		for _, d := range docs {
			if !utf8.Valid(d.Text) {
				t.Fatalf("%s: text %q is not valid UTF-8", d.ID, d.Text)
			}
		}
	})
}

func TestParquetTextColumnNotString(t *testing.T) {
	type row struct {
		ID   string `parquet:"id"`
		Text int64  `parquet:"text"`
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "n.parquet")
	if err := parquet.WriteFile(path, []row{{"a", 1}, {"b", 2}}); err != nil {
		t.Fatal(err)
	}
	_, st, err := readCorpus(t, []string{dir}, corpus.Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r := skipsOf(st)[path]; !strings.Contains(r, `column "text"`) {
		t.Errorf("skips %v, want the file skipped: its text column holds no strings", st.Skipped)
	}
}
