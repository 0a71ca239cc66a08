"""Real test infrastructure (local servers, fault injection), shared by the test packages."""
