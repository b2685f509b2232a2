package corpus

import (
	"bytes"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// HTMLText returns the visible text of an HTML document: the text of the body
// and the title, without scripts, styles, templates or comments, with
// entities decoded, runs of white space collapsed to one space as a browser
// shows them (except inside <pre>), and a newline at each block boundary.
// src must be valid UTF-8; so is the result.
func HTMLText(src []byte) []byte {
	z := html.NewTokenizer(bytes.NewReader(src))
	var out bytes.Buffer
	hidden := 0 // depth inside elements whose text is not shown
	pre := 0
	pendingSpace := false
	newline := func() {
		pendingSpace = false
		if out.Len() > 0 && out.Bytes()[out.Len()-1] != '\n' {
			out.WriteByte('\n')
		}
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return bytes.TrimSpace(out.Bytes())
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if invisible(a) {
				if tt == html.StartTagToken {
					hidden++
				} else if tt == html.EndTagToken && hidden > 0 {
					hidden--
				}
				continue
			}
			if a == atom.Pre {
				if tt == html.StartTagToken {
					pre++
				} else if tt == html.EndTagToken && pre > 0 {
					pre--
				}
			}
			if a == atom.Br || block(a) {
				newline()
			}
		case html.TextToken:
			if hidden > 0 {
				continue
			}
			text := z.Text()
			if pre > 0 {
				out.Write(text)
				continue
			}
			if len(text) > 0 && isSpace(text[0]) {
				pendingSpace = true
			}
			for i, f := range bytes.FieldsFunc(text, func(r rune) bool { return r < 0x80 && isSpace(byte(r)) }) {
				if (pendingSpace || i > 0) && out.Len() > 0 && out.Bytes()[out.Len()-1] != '\n' {
					out.WriteByte(' ')
				}
				out.Write(f)
				pendingSpace = false
			}
			if len(text) > 0 && isSpace(text[len(text)-1]) {
				pendingSpace = true
			}
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

// invisible elements: their content is never shown as text.
func invisible(a atom.Atom) bool {
	switch a {
	case atom.Script, atom.Style, atom.Noscript, atom.Template, atom.Svg, atom.Math, atom.Iframe, atom.Object:
		return true
	}
	return false
}

// block elements start on a new line.
func block(a atom.Atom) bool {
	switch a {
	case atom.P, atom.Div, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Li, atom.Ul, atom.Ol,
		atom.Table, atom.Tr, atom.Td, atom.Th, atom.Section, atom.Article, atom.Header, atom.Footer, atom.Nav,
		atom.Aside, atom.Main, atom.Blockquote, atom.Pre, atom.Hr, atom.Dl, atom.Dt, atom.Dd, atom.Figure,
		atom.Figcaption, atom.Form, atom.Title, atom.Body, atom.Html, atom.Address, atom.Caption, atom.Details, atom.Summary:
		return true
	}
	return false
}
