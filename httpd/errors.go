package httpd

// httpError is a request the server answers with an error status instead of
// serving it. The values below are shared: returning one allocates nothing.
type httpError struct {
	code   int
	reason string // for the debug log; the client sees only the status text
}

func (e *httpError) Error() string { return "httpd: " + statusText(e.code) + ": " + e.reason }

var (
	errBadRequestLine   = &httpError{400, "malformed request line"}
	errBadHeader        = &httpError{400, "malformed header field"}
	errObsFold          = &httpError{400, "obsolete line folding"}
	errMissingHost      = &httpError{400, "HTTP/1.1 request without Host"}
	errDuplicateHost    = &httpError{400, "more than one Host"}
	errBadHost          = &httpError{400, "Host is not a host[:port]"}
	errBadContentLength = &httpError{400, "invalid Content-Length"}
	errLengthAndTE      = &httpError{400, "both Content-Length and Transfer-Encoding"}
	errDuplicateTE      = &httpError{400, "more than one Transfer-Encoding"}
	errTENotChunked     = &httpError{400, "final transfer coding is not chunked"}
	errBodyTooLarge     = &httpError{413, "GET or HEAD with a body too large to discard, or chunked"}
	errBadTarget        = &httpError{400, "request-target is not origin-form"}
	errBadEscape        = &httpError{400, "bad percent-encoding in path"}
	errBadPathByte      = &httpError{400, "forbidden byte in path"}
	errDotDot           = &httpError{400, "dot-dot segment in path"}
	errVersion          = &httpError{505, "unsupported HTTP version"}
	errURITooLong       = &httpError{414, "request line too long"}
	errHeadTimeout      = &httpError{408, "request head not complete in time"}
	errHeaderTooLarge   = &httpError{431, "header block too large"}
	errTooManyHeaders   = &httpError{431, "too many header fields"}
	errNotFound         = &httpError{404, "no such file"}
	errForbidden        = &httpError{403, "permission denied"}
	errMethod           = &httpError{405, "method not allowed"}
	errBadTE            = &httpError{501, "transfer coding other than chunked"}
	errTE10             = &httpError{400, "Transfer-Encoding in an HTTP/1.0 request"}
	errBadChunk         = &httpError{400, "malformed chunked body"}
	errUpstream         = &httpError{502, "upstream failed"}
	errUpstreamTimeout  = &httpError{504, "upstream did not answer in time"}
	errTooManyConns     = &httpError{503, "too many connections"}
)
