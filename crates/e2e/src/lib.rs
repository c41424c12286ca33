//! End-to-end tests of the service binaries live in `tests/`; this library is empty.
