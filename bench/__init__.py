"""`make bench` and `make soak`. They run the library from the repository, with the repository's config."""

from stripe_middleware_dev import use_repo_config

use_repo_config()
