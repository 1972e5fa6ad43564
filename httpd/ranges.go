package httpd

import "bytes"

// byteRange is a satisfiable range of a file: length bytes from start.
type byteRange struct{ start, length int64 }

// rangeVerdict is what a Range header asks of a file of a given size.
type rangeVerdict int

const (
	rangeIgnored       rangeVerdict = iota // absent, malformed, several ranges, or not bytes: send the whole file (200)
	rangeSatisfiable                       // send the range (206)
	rangeUnsatisfiable                     // nothing to send (416)
)

// parseRange interprets a Range value for a file of size bytes (RFC 9110
// section 14.1). One range is served. A set of several ranges is answered
// with the whole file, which RFC 9110 section 14.2 allows, and which spares
// the server multipart bodies and the amplification of overlapping ranges.
// A syntactically invalid Range is ignored, as section 14.2 requires.
func parseRange(v []byte, size int64) (byteRange, rangeVerdict) {
	eq := bytes.IndexByte(v, '=')
	if eq < 0 || !equalFold(trimOWS(v[:eq]), "bytes") {
		return byteRange{}, rangeIgnored
	}
	spec := trimOWS(v[eq+1:])
	if bytes.IndexByte(spec, ',') >= 0 {
		return byteRange{}, rangeIgnored
	}
	dash := bytes.IndexByte(spec, '-')
	if dash < 0 {
		return byteRange{}, rangeIgnored
	}
	first, last := trimOWS(spec[:dash]), trimOWS(spec[dash+1:])
	if len(first) == 0 {
		// suffix-range: the last n bytes.
		n, ok := parseContentLength(last)
		switch {
		case !ok:
			return byteRange{}, rangeIgnored
		case n == 0:
			return byteRange{}, rangeUnsatisfiable
		case size == 0:
			// Satisfiable by the letter of section 14.1.1, yet there is no
			// byte to name in a Content-Range: the (empty) file it is.
			return byteRange{}, rangeIgnored
		}
		n = min(n, size)
		return byteRange{size - n, n}, rangeSatisfiable
	}
	a, ok := parseContentLength(first)
	if !ok {
		return byteRange{}, rangeIgnored
	}
	b := size - 1
	if len(last) > 0 {
		if b, ok = parseContentLength(last); !ok || b < a {
			return byteRange{}, rangeIgnored
		}
		b = min(b, size-1)
	}
	if a >= size {
		return byteRange{}, rangeUnsatisfiable
	}
	return byteRange{a, b - a + 1}, rangeSatisfiable
}
