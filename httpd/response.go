package httpd

import (
	"strconv"
	"time"
)

// Response heads are written piece by piece into the connection's
// bufio.Writer from constant strings and the conn's scratch buffer; nothing
// here allocates.

// statusText returns the reason phrase for the statuses this server sends.
func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 301:
		return "Moved Permanently"
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
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Status " + strconv.Itoa(code)
}

// startHead writes the status line and the headers every response has, and
// counts the response.
func (c *conn) startHead(code int) {
	if code/100 < len(c.srv.stats.class) {
		c.srv.stats.class[code/100].Add(1)
	}
	bw := c.bw
	bw.WriteString("HTTP/1.1 ")
	c.scratch = strconv.AppendInt(c.scratch[:0], int64(code), 10)
	bw.Write(c.scratch)
	bw.WriteByte(' ')
	bw.WriteString(statusText(code))
	bw.WriteString("\r\nServer: xhttpd\r\nDate: ")
	bw.Write(c.srv.date.get(time.Now()))
	bw.WriteString("\r\n")
}

// endHead writes the Connection header, if one is needed, and the empty
// line. HTTP/1.1 is persistent by default, so only close is said there;
// an HTTP/1.0 client that asked for keep-alive is told it got it.
func (c *conn) endHead(close bool, minor int) {
	switch {
	case close:
		c.bw.WriteString("Connection: close\r\n")
	case minor == 0:
		c.bw.WriteString("Connection: keep-alive\r\n")
	}
	c.bw.WriteString("\r\n")
}

func (c *conn) writeContentLength(n int64) {
	c.bw.WriteString("Content-Length: ")
	c.scratch = strconv.AppendInt(c.scratch[:0], n, 10)
	c.bw.Write(c.scratch)
	c.bw.WriteString("\r\n")
}

// writeFileHead writes a 200 head for a file of size bytes.
func (c *conn) writeFileHead(name string, size int64, mod time.Time, close bool, minor int) {
	c.startHead(200)
	c.bw.WriteString("Content-Type: ")
	c.bw.WriteString(contentType(name))
	c.bw.WriteString("\r\n")
	c.writeContentLength(size)
	c.bw.WriteString("Last-Modified: ")
	c.scratch = mod.UTC().AppendFormat(c.scratch[:0], timeFormat)
	c.bw.Write(c.scratch)
	c.bw.WriteString("\r\n")
	c.endHead(close, minor)
}

// writeError writes an error response: the status as a short text body
// (its head only for HEAD), and Allow for 405.
func (c *conn) writeError(he *httpError, head, close bool, minor int) {
	text := statusText(he.code)
	c.startHead(he.code)
	if he.code == 405 {
		c.bw.WriteString("Allow: GET, HEAD\r\n")
	}
	c.bw.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	// The body is "<code> <text>\n": three digits, a space, the text, a newline.
	c.writeContentLength(int64(len(text) + 5))
	c.endHead(close, minor)
	if head {
		return
	}
	c.scratch = strconv.AppendInt(c.scratch[:0], int64(he.code), 10)
	c.bw.Write(c.scratch)
	c.bw.WriteByte(' ')
	c.bw.WriteString(text)
	c.bw.WriteByte('\n')
}

// writeRedirect sends a directory named without its trailing slash to the
// name with one. Location is rebuilt from the cleaned name, never copied
// from the request: "//evil.example" must not become a redirect off site.
func (c *conn) writeRedirect(t target, head, close bool, minor int) {
	const body = "301 Moved Permanently\n"
	c.startHead(301)
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
