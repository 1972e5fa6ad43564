package httpd

import (
	"net/http"
	"strconv"
	"time"
)

// Response heads are written piece by piece into the connection's
// bufio.Writer from constant strings, a cache entry's prepared lines and the
// conn's scratch buffer; nothing here allocates.

// statusText returns the reason phrase for a status: this server's own
// wording for the ones it sends, net/http's for any other an upstream sends.
func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 206:
		return "Partial Content"
	case 301:
		return "Moved Permanently"
	case 304:
		return "Not Modified"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 414:
		return "URI Too Long"
	case 413:
		return "Content Too Large"
	case 416:
		return "Range Not Satisfiable"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Status " + strconv.Itoa(code)
}

// startHead writes the status line and the headers every response has,
// counts the response and remembers its status for the access log. date
// is the response's Date: a static response, written microseconds after
// its request was read, takes the request's time (c.start) and saves a
// clock reading; the proxy's and the errors' take the time of writing.
func (c *conn) startHead(code int, date time.Time) {
	c.srv.stats.response(code)
	c.status = code
	bw := c.bw
	switch code {
	case 200:
		bw.WriteString("HTTP/1.1 200 OK\r\n")
	case 304:
		bw.WriteString("HTTP/1.1 304 Not Modified\r\n")
	default:
		bw.WriteString("HTTP/1.1 ")
		c.scratch = strconv.AppendInt(c.scratch[:0], int64(code), 10)
		bw.Write(c.scratch)
		bw.WriteByte(' ')
		bw.WriteString(statusText(code))
		bw.WriteString("\r\n")
	}
	bw.WriteString(c.srv.serverDate)
	bw.Write(c.srv.date.get(date))
	bw.WriteString("\r\n")
}

// endHead writes the Connection header, if one is needed, and the empty
// line. HTTP/1.1 is persistent by default, so only close is said there;
// an HTTP/1.0 client that asked for keep-alive is told it got it.
func (c *conn) endHead(close bool, minor int) {
	switch {
	case close:
		c.bw.WriteString("Connection: close\r\n\r\n")
	case minor == 0:
		c.bw.WriteString("Connection: keep-alive\r\n\r\n")
	default:
		c.bw.WriteString("\r\n")
	}
}

func (c *conn) writeContentLength(n int64) {
	c.bw.WriteString("Content-Length: ")
	c.scratch = strconv.AppendInt(c.scratch[:0], n, 10)
	c.bw.Write(c.scratch)
	c.bw.WriteString("\r\n")
}

// writeEntryHead writes the 200 head of a file: the prepared lines of its
// entry between the per-request ones.
func (c *conn) writeEntryHead(e *entry, close bool, minor int) {
	c.startHead(200, c.start)
	c.bw.Write(e.head)
	c.endHead(close, minor)
}

// writePartialHead writes the 206 head for the range r of e.
func (c *conn) writePartialHead(e *entry, r byteRange, close bool, minor int) {
	c.startHead(206, c.start)
	c.bw.Write(e.noLength)
	c.bw.WriteString("Content-Range: bytes ")
	s := strconv.AppendInt(c.scratch[:0], r.start, 10)
	s = append(s, '-')
	s = strconv.AppendInt(s, r.start+r.length-1, 10)
	s = append(s, '/')
	s = strconv.AppendInt(s, e.size, 10)
	c.scratch = s
	c.bw.Write(s)
	c.bw.WriteString("\r\n")
	c.writeContentLength(r.length)
	c.endHead(close, minor)
}

// writeNotModified writes a 304: the validators a 200 would have carried,
// and no body.
func (c *conn) writeNotModified(e *entry, close bool, minor int) {
	c.startHead(304, c.start)
	c.bw.Write(e.validators)
	c.endHead(close, minor)
}

// writeError writes an error response: the status as a short text body
// (its head only for HEAD), Allow for 405 and Retry-After for 503.
func (c *conn) writeError(he *httpError, head, close bool, minor int) {
	c.startHead(he.code, time.Now())
	switch he.code {
	case 405:
		c.bw.WriteString("Allow: GET, HEAD\r\n")
	case 503:
		c.bw.WriteString("Retry-After: 1\r\n")
	}
	c.writeTextBody(he.code, head, close, minor)
}

// writeRangeNotSatisfiable writes a 416 for a file of size bytes.
func (c *conn) writeRangeNotSatisfiable(size int64, close bool, minor int) {
	c.startHead(416, time.Now())
	c.bw.WriteString("Content-Range: bytes */")
	c.scratch = strconv.AppendInt(c.scratch[:0], size, 10)
	c.bw.Write(c.scratch)
	c.bw.WriteString("\r\n")
	c.writeTextBody(416, false, close, minor)
}

// writeTextBody ends an error head and writes its body, "<code> <text>\n".
func (c *conn) writeTextBody(code int, head, close bool, minor int) {
	text := statusText(code)
	c.bw.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	c.writeContentLength(int64(len(text) + 5)) // three digits, a space, the text, a newline
	c.endHead(close, minor)
	if head {
		return
	}
	c.scratch = strconv.AppendInt(c.scratch[:0], int64(code), 10)
	c.bw.Write(c.scratch)
	c.bw.WriteByte(' ')
	c.bw.WriteString(text)
	c.bw.WriteByte('\n')
	c.sent += int64(len(text) + 5)
}

// writeRedirect sends a directory named without its trailing slash to the
// name with one. Location is rebuilt from the cleaned name, never copied
// from the request: "//evil.example" must not become a redirect off site.
func (c *conn) writeRedirect(t target, head, close bool, minor int) {
	const body = "301 Moved Permanently\n"
	c.startHead(301, time.Now())
	c.bw.WriteString("Location: /")
	if string(t.name) != "." {
		c.scratch = appendEscapedPath(c.scratch[:0], t.name)
		c.bw.Write(c.scratch)
		c.bw.WriteByte('/')
	}
	if len(t.query) > 0 {
		// Already checked to be visible ASCII by the request-line parser.
		c.bw.WriteByte('?')
		c.bw.Write(t.query)
	}
	c.bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\n")
	c.writeContentLength(int64(len(body)))
	c.endHead(close, minor)
	if !head {
		c.bw.WriteString(body)
		c.sent += int64(len(body))
	}
}

// appendEscapedPath percent-encodes a decoded relative path for use in a
// URL: RFC 3986 pchar and '/' stay, everything else is escaped.
func appendEscapedPath(dst, p []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, ch := range p {
		if isPathChar(ch) {
			dst = append(dst, ch)
		} else {
			dst = append(dst, '%', hex[ch>>4], hex[ch&15])
		}
	}
	return dst
}

func isPathChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '/':
		return true
	}
	return false
}
