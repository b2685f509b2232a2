package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
)

// checkKeys reads only what the API documents: encoding/json matches keys
// case-insensitively and lets the last of duplicate keys win, so before
// decoding, the body's object keys are checked: a key that names a field of
// v in another casing ({"Documents":10}) is an unknown field, and a key given
// twice in one object is refused, both naming the key. Malformed JSON is left
// to the decoder.
func checkKeys(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	err := walkValue(dec, reflect.TypeOf(v))
	if errors.Is(err, errMalformed) {
		return nil
	}
	return err
}

// errMalformed stops the walk at JSON the decoder will refuse itself.
var errMalformed = errors.New("malformed JSON")

// walkValue reads one JSON value; t is the Go type it decodes into (nil if
// not known).
func walkValue(dec *json.Decoder, t reflect.Type) error {
	tok, err := dec.Token()
	if err != nil {
		return errMalformed
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, t)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := walkValue(dec, elem); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return errMalformed
		}
	}
	return nil
}

// walkObject reads the rest of an object whose '{' was read.
func walkObject(dec *json.Decoder, t reflect.Type) error {
	fields := jsonFields(t)
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errMalformed
		}
		key, ok := tok.(string)
		if !ok {
			return errMalformed
		}
		if seen[key] {
			return badRequest(CodeInvalidJSON, key, "key %q is given twice", key)
		}
		seen[key] = true
		ft, exact := fields[key]
		if !exact && fields != nil {
			for name := range fields {
				if strings.EqualFold(name, key) {
					return badRequest(CodeUnknownField, key, "unknown field %q (did you mean %q? keys are case-sensitive)", key, name)
				}
			}
		}
		if err := walkValue(dec, ft); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return errMalformed
	}
	return nil
}

// jsonFields returns the JSON names of a struct type's fields and their
// types, or nil when t is not a struct.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
