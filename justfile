# hookjar's recipes. `just` is optional: each recipe is one plain cargo command.

# List the recipes.
default:
    @just --list

# Run every test (the README's test command; CI runs it too).
test:
    cargo test --workspace

# Lints, as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the whole workspace.
fmt:
    cargo fmt --all

# The main job: the self-hosted dispatcher conformance suite.
run *ARGS:
    cargo run --release -- conformance {{ARGS}}

# The OpenAPI contract against the server, as CI checks it (schemathesis, ~2 min).
schemathesis:
    bash .ci/schemathesis

# Everything CI does.
ci:
    bash .ci/run

# Benchmarks and long load runs (see docs/performance.md).
bench:
    cargo bench --workspace

# Load runs of docs/performance.md (release; loopback only; bounded).
load:
    cargo build --release -p hookjar
    cargo run --release -p hookjar-bench -- mock
    cargo run --release -p hookjar-bench -- mock-memory
    cargo run --release -p hookjar-bench -- lifecycle
    cargo run --release -p hookjar-bench -- dispatch
    cargo run --release -p hookjar-bench -- dispatch --events 20000 --webhooks 1
    cargo run --release -p hookjar-bench -- dispatch --store memory
    cargo run --release -p hookjar-bench -- dispatch --events 20000 --webhooks 1 --store memory
    cargo run --release -p hookjar-bench -- restart

# Retake the docs' screenshots (docs/img/) with the browser tests in headless Chromium
# (needs Debian's chromium and chromium-driver).
screenshots:
    HOOKJAR_REQUIRE_BROWSER=1 HOOKJAR_SCREENSHOTS=docs/img cargo test -p hookjar-tests --test browser

# The conformance suite against every mutant of the reference dispatcher, self-hosted and
# over HTTP at time scales 1, 3600 and 36000 (long: the ignored tests; docs/testing.md).
mutants:
    cargo test -p hookjar-tests --test mutants -- --include-ignored

# The PostgreSQL load runs of docs/performance.md (real hookjar serve processes).
load-postgres:
    cargo build --release -p hookjar -p hookjar-bench
    ./target/release/hookjar-load shared
    ./target/release/hookjar-load shared-kill
    ./target/release/hookjar-load shared-restart

# The conformance suite against every mutant of the independent Python dispatcher
# (tests/tools/pydisp.py; ~15 min; docs/testing.md).
pymutants:
    cargo build --release -p hookjar
    python3 tests/tools/pymutants.py
