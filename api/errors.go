package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/serin-dev/serin/rollout"
)

// ErrorBody is the JSON shape of every error answer.
type ErrorBody struct {
	Error   string   `json:"error"`
	Details []string `json:"details,omitempty"`
}

// ErrTerminal is returned when an action needs a rollout that is still
// running but it has already finished.
var ErrTerminal = errors.New("rollout already finished")

// httpError is an error that carries its HTTP status and details.
type httpError struct {
	status  int
	msg     string
	details []string
}

func (e *httpError) Error() string { return e.msg }

// errorf makes an httpError.
func errorf(status int, details []string, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...), details: details}
}

// abort answers with err as JSON and stops the gin chain. Errors from the
// Kubernetes API are mapped to their status; anything unexpected is a 500
// whose cause is logged, not shown.
func abort(c *gin.Context, log *slog.Logger, err error) {
	status, body := classify(err)
	if status == http.StatusInternalServerError {
		log.Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "err", err)
	}
	c.AbortWithStatusJSON(status, body)
}

func classify(err error) (int, ErrorBody) {
	var he *httpError
	if errors.As(err, &he) {
		return he.status, ErrorBody{Error: he.msg, Details: he.details}
	}
	if errors.Is(err, ErrTerminal) || errors.Is(err, rollout.ErrNotRetryable) {
		return http.StatusConflict, ErrorBody{Error: err.Error()}
	}
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return http.StatusInternalServerError, ErrorBody{Error: "internal error"}
	}
	st := se.Status()
	switch {
	case apierrors.IsInvalid(err):
		var details []string
		if st.Details != nil {
			for _, c := range st.Details.Causes {
				details = append(details, fmt.Sprintf("%s: %s", c.Field, c.Message))
			}
		}
		return http.StatusUnprocessableEntity, ErrorBody{Error: "the rollout does not validate", Details: details}
	case apierrors.IsNotFound(err):
		return http.StatusNotFound, ErrorBody{Error: "rollout not found"}
	case apierrors.IsAlreadyExists(err):
		return http.StatusConflict, ErrorBody{Error: "a rollout with this name already exists"}
	case apierrors.IsConflict(err):
		return http.StatusConflict, ErrorBody{Error: "the rollout changed concurrently; retry", Details: []string{st.Message}}
	case apierrors.IsBadRequest(err):
		return http.StatusBadRequest, ErrorBody{Error: st.Message}
	}
	return http.StatusInternalServerError, ErrorBody{Error: "internal error"}
}
