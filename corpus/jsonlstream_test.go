package corpus

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// jsonlDocs reads the JSONL content with the given streaming threshold and
// returns each document (id, text, bytes, invalid UTF-8, streamed or not) and
// skip (path and the reason's first words), in order.
func jsonlDocs(t *testing.T, dir string, above int64) (docs []string, streamed int) {
	t.Helper()
	src, err := Open([]string{dir}, Options{StreamAbove: above, IDField: "id"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	st, err := Scan(context.Background(), src, 1, func(doc Document) (string, error) {
		text := doc.Text
		if doc.Streamed() {
			streamed++
			r, release, err := doc.stream.open()
			if err != nil {
				return "", err
			}
			defer release()
			if text, err = io.ReadAll(r); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("doc %q %q bytes=%d invalid=%d", doc.ID, text, doc.Bytes, doc.InvalidUTF8), nil
	}, func(s string) error {
		docs = append(docs, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, sk := range st.Skipped {
		reason, _, _ := strings.Cut(sk.Reason, ":")
		docs = append(docs, "skip "+sk.Path+" "+reason)
	}
	docs = append(docs, fmt.Sprintf("stats docs=%d bytes=%d invalid=%d", st.Documents, st.Bytes, st.InvalidUTF8Documents))
	return docs, streamed
}

// checkJSONLStreamed compares reading content as a JSONL file with every
// record streamed (StreamAbove 1) and with every record read whole.
func checkJSONLStreamed(t *testing.T, content []byte) int {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "r.jsonl"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	want, n := jsonlDocs(t, dir, -1)
	if n != 0 {
		t.Fatalf("StreamAbove -1 streamed %d records", n)
	}
	got, n := jsonlDocs(t, dir, 1)
	if !slices.Equal(got, want) {
		t.Fatalf("JSONL %q:\nstreamed %q\nwhole    %q", content, got, want)
	}
	return n
}

// jsonlLines are the records of the JSONL differential test: escapes,
// surrogates (paired, lone, reversed), invalid UTF-8, duplicate keys, the id
// after the text, numeric and odd ids, nested values, null and non-string
// text, and lines that are not JSON objects.
var jsonlLines = []string{
	`{"id":"a","text":"plain text"}`,
	`{"text":"id after text \" \\ \/ \b \f \n \r \t","id":7}`,
	`  {"id":-1.5e+3, "text" : "number id"}  `,
	`{"id":{"x":1},"text":"object id"}`,
	`{"text":"pair \ud83d\ude00 lone high \ud800 lone low \udc00 reversed \udc00\ud800 high then letter \ud800\u0041 end \ud800"}`,
	`{"text":"\u00e9\u65e5\u0000 nul escape"}`,
	"{\"text\":\"raw invalid \xff\xfe and \xe2\x82 cut\"}",
	`{"text":"first","text":"second wins","id":"x","id":"y"}`,
	`{"meta":{"a":[1,2,{"b":null}],"c":"\"}"},"text":"after nested","n":[true,false,null,-0,0.5,1E9]}`,
	`{"text":null,"id":"null text"}`,
	`{"text":12,"id":"number text"}`,
	`{"id":"no text"}`,
	`{}`,
	`[1,2,3]`,
	`"just a string"`,
	`{"text":"trailing"} x`,
	`{"text":"unterminated`,
	`{"text":"bad escape \x"}`,
	"{\"text\":\"control \x01 char\"}",
	`{"text":"bad \u12g4 hex"}`,
	`{"text":"ok",}`,
	`{"text" "no colon"}`,
	`{"text":01}`,
	`{"text":"x","n":1.}`,
	`{"text":"x","n":-}`,
	`{"text":"x","b":tru}`,
	"   \t  ",
	"\u00a0 \u3000",
	"\u00a0 x",
	`{"text":"crlf line"}` + "\r",
	`{"id":"` + strings.Repeat("i", 300) + `","text":"` + strings.Repeat("long text with words ", 4000) + `"}`,
	`{"text":"last line without newline"}`,
}

// TestJSONLStreamedMatchesInMemory is the differential test of streamed
// JSONL records: every line streamed (two passes, the text decoded in
// blocks) gives the same documents, texts, ids, bytes, invalid UTF-8 counts
// and skipped lines as encoding/json on the whole line.
func TestJSONLStreamedMatchesInMemory(t *testing.T) {
	content := strings.Join(jsonlLines, "\n")
	if n := checkJSONLStreamed(t, []byte(content)); n < 10 {
		t.Errorf("only %d records streamed", n)
	}
	deep := `{"text":"deep","x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`
	checkJSONLStreamed(t, []byte(deep+"\n"+`{"text":"ok"}`+"\n"))
}

// FuzzJSONLStreamed compares streamed and whole reading of arbitrary JSONL.
//
//	go test ./corpus -run '^$' -fuzz FuzzJSONLStreamed -parallel 1
func FuzzJSONLStreamed(f *testing.F) {
	for _, l := range jsonlLines {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		checkJSONLStreamed(t, content)
	})
}
