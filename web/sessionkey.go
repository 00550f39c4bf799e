package web

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
)

// MinSessionKeyBytes is the shortest session key New and ReadSessionKey
// accept: 32 random bytes, the strength of the AES-256 key derived from it.
const MinSessionKeyBytes = 32

// ErrSessionKeyTooShort is returned for a session key of fewer than
// MinSessionKeyBytes bytes.
var ErrSessionKeyTooShort = errors.New("the session key is too short")

// maxSessionKeyFileBytes bounds what ReadSessionKey reads, so that a wrong
// path (a log, a binary) is refused rather than hashed.
const maxSessionKeyFileBytes = 4096

// ReadSessionKey reads the console's session key from path: at least
// MinSessionKeyBytes random bytes, typically a file of a mounted Secret
// shared by every replica. The bytes are the key as they are, a final
// newline included: trimming it would shorten a random binary key that
// happens to end in one. A missing, unreadable, too short or too long
// file is an error that names the path.
func ReadSessionKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("session key file: %w", err)
	}
	if len(b) > maxSessionKeyFileBytes {
		return nil, fmt.Errorf("session key file %s: %d bytes, want a key of %d to %d bytes", path, len(b), MinSessionKeyBytes, maxSessionKeyFileBytes)
	}
	if len(b) < MinSessionKeyBytes {
		return nil, fmt.Errorf("session key file %s: %d bytes, want at least %d random bytes (head -c 32 /dev/urandom): %w",
			path, len(b), MinSessionKeyBytes, ErrSessionKeyTooShort)
	}
	return b, nil
}

// consoleKeys are the keys derived from the session key, one per use, so
// that no key serves two purposes.
type consoleKeys struct {
	// session encrypts and authenticates the session cookie (AES-256-GCM).
	session cipher.AEAD
	// login signs the login form's CSRF token (HMAC-SHA256).
	login []byte
}

// HKDF labels of the derived keys. A new cookie format gets a new label,
// so that old cookies no longer open.
const (
	sessionKeyLabel = "serin console session cookie v1"
	loginKeyLabel   = "serin console login form v1"
)

// deriveKeys derives the console's keys from master with HKDF-SHA256 and
// distinct labels.
func deriveKeys(master []byte) (consoleKeys, error) {
	if len(master) < MinSessionKeyBytes {
		return consoleKeys{}, fmt.Errorf("web: %d bytes, want at least %d: %w", len(master), MinSessionKeyBytes, ErrSessionKeyTooShort)
	}
	sk, err := hkdf.Key(sha256.New, master, nil, sessionKeyLabel, 32)
	if err != nil {
		return consoleKeys{}, fmt.Errorf("web: derive the session key: %w", err)
	}
	lk, err := hkdf.Key(sha256.New, master, nil, loginKeyLabel, 32)
	if err != nil {
		return consoleKeys{}, fmt.Errorf("web: derive the login form key: %w", err)
	}
	block, err := aes.NewCipher(sk)
	if err != nil {
		return consoleKeys{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return consoleKeys{}, err
	}
	return consoleKeys{session: aead, login: lk}, nil
}

// randomKey returns a fresh session key, for a console without one.
func randomKey() ([]byte, error) {
	b := make([]byte, MinSessionKeyBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("web: random session key: %w", err)
	}
	return b, nil
}
