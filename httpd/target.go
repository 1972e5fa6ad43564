package httpd

// target is a request-target reduced to what file lookup needs.
type target struct {
	name     []byte // relative to Root, segments joined by '/', "." for Root itself
	dirSlash bool   // the path ended in '/'
	query    []byte // raw, without '?': kept only for redirects
}

// parseTarget percent-decodes the path of a request-target into dst and
// reduces it to a name relative to Root, refusing anything that could climb
// out of it. The rules are deliberately stricter than URL resolution: no
// browser sends what they refuse, and a static server gains nothing from
// being lenient where traversal attacks live.
//
//   - %2F (an encoded '/') is refused: it would let a segment hide a separator
//     from the checks below.
//   - '\\', NUL and other control bytes are refused, raw or encoded.
//   - ".." segments are refused after decoding, so %2e%2e is caught too.
//   - "." and empty segments are dropped.
//
// Symbolic links are the last way out; os.Root refuses those when the file
// is opened (see open).
func parseTarget(dst []byte, raw []byte) (target, *httpError) {
	if len(raw) == 0 {
		return target{}, errBadTarget
	}
	if raw[0] != '/' {
		// RFC 9112 section 3.2.2: servers must accept absolute-form.
		rest, ok := cutSchemePrefix(raw)
		if !ok {
			return target{}, errBadTarget
		}
		raw = []byte("/")
		for i, c := range rest {
			if c == '/' || c == '?' {
				raw = rest[i:]
				break
			}
		}
		if raw[0] == '?' {
			// "http://host?q": the path is empty, which means "/".
			return parseTarget(dst, append([]byte("/"), raw...))
		}
	}
	var t target
	p := raw
	for i, c := range raw {
		if c == '?' {
			p, t.query = raw[:i], raw[i+1:]
			break
		}
		if c == '#' {
			// A fragment is never sent by a conforming client.
			return target{}, errBadTarget
		}
	}
	t.dirSlash = p[len(p)-1] == '/'

	dst = dst[:0]
	seg := 0 // where the current segment starts in dst
	endSegment := func() *httpError {
		switch s := dst[seg:]; {
		case len(s) == 0, len(s) == 1 && s[0] == '.':
			dst = dst[:seg]
		case len(s) == 2 && s[0] == '.' && s[1] == '.':
			return errDotDot
		default:
			dst = append(dst, '/')
		}
		seg = len(dst)
		return nil
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '/':
			if err := endSegment(); err != nil {
				return target{}, err
			}
			continue
		case '\\':
			return target{}, errBadPathByte
		case '%':
			if i+2 >= len(p) {
				return target{}, errBadEscape
			}
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if !ok1 || !ok2 {
				return target{}, errBadEscape
			}
			c = hi<<4 | lo
			i += 2
			if c == '/' || c == '\\' || c < ' ' || c == 0x7f {
				return target{}, errBadPathByte
			}
		}
		dst = append(dst, c)
	}
	if err := endSegment(); err != nil {
		return target{}, err
	}
	if n := len(dst); n > 0 {
		dst = dst[:n-1] // endSegment's separator
	} else {
		dst = append(dst, '.')
	}
	t.name = dst
	return t, nil
}

func cutSchemePrefix(b []byte) ([]byte, bool) {
	for _, s := range [...]string{"http://", "https://"} {
		if len(b) >= len(s) && equalFold(b[:len(s)], s) {
			return b[len(s):], true
		}
	}
	return nil, false
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
