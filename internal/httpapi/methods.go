package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"

	apispec "github.com/slotpay/slotpay/api"
)

// methodTable knows, for every path of the contract (api/openapi.yaml and
// api/site.yaml), the methods it offers, so that a request with another
// method is answered 405 with an Allow header (RFC 9110 §15.5.6) rather than
// a bare 404 or a 405 that does not say what would work.
type methodTable struct {
	paths   *http.ServeMux // path templates only; matched, never served
	methods map[string]string
}

func newMethodTable() (*methodTable, error) {
	t := &methodTable{paths: http.NewServeMux(), methods: map[string]string{}}
	for _, doc := range [][]byte{apispec.OpenAPI, apispec.Site} {
		spec, err := openapi3.NewLoader().LoadFromData(doc)
		if err != nil {
			return nil, fmt.Errorf("load the contract's paths: %w", err)
		}
		for path, item := range spec.Paths.Map() {
			var methods []string
			for method := range item.Operations() {
				methods = append(methods, method)
			}
			slices.Sort(methods)
			// OpenAPI's {name} is ServeMux's wildcard too; a trailing slash
			// is an exact path in OpenAPI, a prefix in ServeMux.
			pattern := path
			if strings.HasSuffix(pattern, "/") {
				pattern += "{$}"
			}
			t.paths.Handle(pattern, http.NotFoundHandler())
			t.methods[pattern] = strings.Join(methods, ", ")
		}
	}
	return t, nil
}

// allowed is the Allow header for r's path, and whether the contract knows
// the path but not r's method.
func (t *methodTable) allowed(r *http.Request) (string, bool) {
	_, pattern := t.paths.Handler(r)
	allow, known := t.methods[pattern]
	if !known || slices.Contains(strings.Split(allow, ", "), r.Method) {
		return "", false
	}
	return allow, true
}

// refuseOtherMethods answers a method the contract does not offer on a
// path it knows with 405 and Allow, and passes everything else to next.
func (s *Server) refuseOtherMethods(t *methodTable, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow, ok := t.allowed(r); ok {
			w.Header().Set("Allow", allow)
			s.writeError(w, r, validationError(routers.ErrMethodNotAllowed))
			return
		}
		next.ServeHTTP(w, r)
	})
}
