package corpus_test

import (
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/reembed/reembed/corpus"
)

func TestHTMLText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"PlainTextUnchanged", "plain text no tags", "plain text no tags"},
		{"ScriptAndStyleDropped", `<STYLE>p{color:red}</STYLE>Visible<script type="x">var s = "<p>no</p>";</script> text`, "Visible text"},
		{"HiddenElementsDropped", `<noscript>ns</noscript><template>tpl</template><svg><text>svg</text></svg><iframe>frame</iframe>shown`, "shown"},
		{"CommentsDropped", `a<!-- hidden -->b`, "ab"},
		{"EntitiesDecoded", `<p>T &amp; U &lt;x&gt; &eacute;&#233;&#x1F600; &quot;q&quot;</p>`, `T & U <x> éé😀 "q"`},
		{"NbspKept", `a&nbsp;b`, "a\u00a0b"},
		{"EscapedEntityDecodedOnce", `A &amp;amp; B`, "A &amp; B"},
		{"SurrogateReferenceIsReplacement", `x&#xD800;y`, "x\uFFFDy"},
		{"TitleIncluded", `<html><head><title>The Title</title></head><body><p>Body</p></body></html>`, "The Title\nBody"},
		{"WhiteSpaceCollapsed", "<p>two   spaces\n  and\tnewline</p>", "two spaces and newline"},
		{"PreKeepsWhiteSpace", "<p>x</p><pre>  keep\n    this</pre><p>y</p>", "x\n  keep\n    this\ny"},
		{"BlocksOnNewLines", `<ul><li>one</li><li>two</li></ul><h1>h</h1><table><tr><td>a</td><td>b</td></tr></table>`, "one\ntwo\nh\na\nb"},
		{"BrIsNewLine", `<p>a<br>b</p>`, "a\nb"},
		{"InlineElementsJoin", `<span>in</span><b>line</b> <i>and</i> <a href="x">link</a>`, "inline and link"},
		{"UnclosedTagsTolerated", `<p>unclosed <b>bold`, "unclosed bold"},
		{"OnlyScriptIsEmpty", `<script>x</script>`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(corpus.HTMLText([]byte(tt.in))); got != tt.want {
				t.Errorf("HTMLText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestHTMLFilesReadAsVisibleText(t *testing.T) {
	dir := t.TempDir()
	page := "<html><head><script>alert(1)</script></head><body><p>Caf\xe9 &amp; bar</p></body></html>"
	writeTree(t, dir, map[string]string{"page.html": page, "page.htm": page, "page.HTML": page})
	t.Run("HTMLExtensionsExtracted", func(t *testing.T) {
		docs, st, err := readCorpus(t, []string{dir}, corpus.Options{}, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"page.HTML", "page.htm", "page.html"} {
			if got := docText(t, docs, id); got != "Caf\uFFFD & bar" {
				t.Errorf("%s = %q, want the visible text with the invalid byte as U+FFFD", id, got)
			}
		}
		if st.InvalidUTF8Documents != 3 {
			t.Errorf("InvalidUTF8Documents = %d, want 3", st.InvalidUTF8Documents)
		}
	})
	t.Run("PlainTextKeepsMarkup", func(t *testing.T) {
		docs, _, err := readCorpus(t, []string{filepath.Join(dir, "page.html")}, corpus.Options{PlainText: true}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := docText(t, docs, "page.html"), "<html><head><script>alert(1)</script></head><body><p>Caf\uFFFD &amp; bar</p></body></html>"; got != want {
			t.Errorf("--plain-text page.html = %q, want %q", got, want)
		}
	})
}

// FuzzHTMLText: any valid UTF-8 input gives valid UTF-8 visible text, without panics.
func FuzzHTMLText(f *testing.F) {
	for _, s := range []string{"<p>a</p>", "<script>x", "<pre>\n x</pre>", "&#0;&#xD800;&amp", "<svg><svg></svg>t"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		valid, _ := corpus.ToValidUTF8(in)
		if out := corpus.HTMLText(valid); !utf8.Valid(out) {
			t.Fatalf("HTMLText(%q) = %q, not valid UTF-8", valid, out)
		}
	})
}
