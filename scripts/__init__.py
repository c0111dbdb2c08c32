"""Process helpers shared by `make run`, the tests and the load-test runner."""
