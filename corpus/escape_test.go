package corpus

import (
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// TestEscapeDocID: escaped ids are valid UTF-8, distinct ids stay distinct,
// and UnescapeDocID gives the original bytes back.
func TestEscapeDocID(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"docs/guide.md":        "docs/guide.md",
		"naïve café.txt":       "naïve café.txt",
		"caf\xe9.txt":          "caf%E9.txt",
		"100%.txt":             "100%25.txt",
		"caf%E9.txt":           "caf%25E9.txt", // not confused with the Latin-1 name
		"\xff\xfe%\xc3":        "%FF%FE%25%C3",
		"a\xed\xa0\x80b.md":    "a%ED%A0%80b.md", // a surrogate, invalid in UTF-8
		"records.csv#id-\x80x": "records.csv#id-%80x",
	}
	seen := map[string]string{}
	for in, want := range cases {
		got := EscapeDocID(in)
		if got != want || !utf8.ValidString(got) {
			t.Errorf("EscapeDocID(%q) = %q, want %q", in, got, want)
		}
		if back := UnescapeDocID(got); back != in {
			t.Errorf("UnescapeDocID(%q) = %q, want %q", got, back, in)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%q and %q escape to the same %q", in, other, got)
		}
		seen[got] = in
	}
}

// TestInvalidUTF8FileNameID: a file whose name is not UTF-8 gets an escaped,
// valid UTF-8 doc_id.
func TestInvalidUTF8FileNameID(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "caf\xe9.txt"), []byte("hello"), 0o644); err != nil {
		t.Skipf("this file system refuses a non-UTF-8 name: %v", err)
	}
	src, err := Open([]string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var ids []string
	_, err = Scan(t.Context(), src, 1, func(d Document) (string, error) { return d.ID, nil },
		func(id string) error { ids = append(ids, id); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != "caf%E9.txt" {
		t.Errorf("ids %q, want [caf%%E9.txt]", ids)
	}
}

// TestRecordIDEscapedOnce: a record's id escapes its file's name and its id
// field once each: "100%.jsonl" with id "a%\xff" is "100%25.jsonl#a%25%FF".
func TestRecordIDEscapedOnce(t *testing.T) {
	t.Parallel()
	got := recordID(EscapeDocID("100%.jsonl"), "a%\xff", "L1")
	if got != "100%25.jsonl#a%25%FF" || UnescapeDocID(got) != "100%.jsonl#a%\xff" {
		t.Errorf("recordID = %q", got)
	}
}
