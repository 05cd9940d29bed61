#!/bin/sh
# Install into the project's virtualenv, making it first if it is missing:
#
#     sh tools/venv-install.sh VENV ARGS...    # ARGS as for pip install: -e . or -e '.[dev]'
#
# The Makefile's `make demo` and `make test` run it. It installs with uv when
# there is one, on PATH or in the virtualenv: uv installs and compiles the
# demo's packages in 3.5 seconds, where pip takes 9 and its own upgrade 1.
# Without uv around, a new virtualenv gets it first, from the index: uv's wheel
# is one binary, with nothing to build, fetched in about a second by the pip
# of $PYTHON (or else by the virtualenv's own). Nothing needs uv: where it
# cannot be had, or fails, pip installs the same packages, as it always did.
#
# uv reads none of pip's settings, so it is handed those pip has here (its
# configuration files or PIP_* variables): the index, the extra indexes
# (searched for the best version of each package, as pip does), the
# find-links locations, the constraints and the certificates. A UV_* variable
# (or SSL_CERT_FILE) already set is left as it is.
#
# Environment: PYTHON, the interpreter to make the virtualenv with (python3);
# SUDO, the prefix of apt-get, to install python3-venv where it is missing.
set -eu

venv=$1
shift
python=${PYTHON:-python3}
sudo=${SUDO-}

# read_pip_config: pip's configuration, from its files and PIP_* variables, once.
pip_config=""
read_pip_config() {
	if [ -z "$pip_config" ]; then
		if [ -x "$venv/bin/pip" ]; then
			pip_config=$("$venv/bin/python" -m pip config list 2>/dev/null || true)
		else
			pip_config=$("$python" -m pip config list 2>/dev/null || true)
		fi
	fi
}

# uv_settings: export, for uv, the settings of pip's that choose the packages.
uv_settings() {
	uv_set UV_INDEX_URL "$(pip_setting index-url)"
	extra=$(pip_setting extra-index-url)
	uv_set UV_EXTRA_INDEX_URL "$extra"
	if [ -n "$extra" ]; then
		uv_set UV_INDEX_STRATEGY unsafe-best-match
	fi
	uv_set UV_FIND_LINKS "$(pip_setting find-links | sed 's/ \{1,\}/,/g')"
	uv_set UV_CONSTRAINT "$(pip_setting constraint)"
	uv_set SSL_CERT_FILE "$(pip_setting cert)"
	# uv would download a Python of its own when it finds none; pip never does.
	uv_set UV_PYTHON_DOWNLOADS never
}

# pip_setting NAME: what pip uses for its option NAME, space-separated: its
# PIP_* variable, else the [install] or [global] section of its configuration.
pip_setting() {
	value=$(printenv "PIP_$(echo "$1" | tr a-z- A-Z_)" || true)
	for section in install global; do
		if [ -z "$value" ]; then
			value=$(printf '%s\n' "$pip_config" | sed -n "s/^$section\.$1='\(.*\)'\$/\1/p")
		fi
	done
	# A value over several lines of pip.conf is listed with \n between them.
	printf '%s' "$value" | sed 's/\\n/ /g; s/^ *//; s/ *$//'
}

# uv_set NAME VALUE: export NAME=VALUE, unless NAME is set already or VALUE is empty.
uv_set() {
	if [ -n "$2" ] && [ -z "$(printenv "$1" || true)" ]; then
		export "$1=$2"
	fi
}

# venv_with_pip: make the virtualenv with Python's venv, pip in it (over a
# virtualenv made without pip, too), installing python3-venv where it is missing.
venv_with_pip() {
	"$python" -m venv "$venv" || {
		$sudo apt-get update && $sudo apt-get install -y python3-venv &&
			"$python" -m venv "$venv"
	}
}

uv=$(command -v uv 2>/dev/null || true)
if [ -z "$uv" ] && [ -x "$venv/bin/uv" ]; then
	uv=$venv/bin/uv
fi

new=""
and_pip=""
if [ ! -x "$venv/bin/python" ]; then
	new=yes
	if [ -n "$uv" ]; then
		read_pip_config
		# --seed: with pip in it too, for whoever runs .venv/bin/pip later.
		(uv_settings && "$uv" venv --quiet --seed --python "$python" "$venv") || venv_with_pip
	elif "$python" -m venv --without-pip "$venv" &&
		"$python" -m pip --python "$venv/bin/python" install --quiet --only-binary=:all: uv \
			2>/dev/null; then
		# uv, fetched by the pip of $python (22.3 or newer) into a virtualenv
		# without pip, which is made in a blink where pip takes 2.5 s; uv then
		# installs pip with the packages.
		uv=$venv/bin/uv
		and_pip=pip
	else
		venv_with_pip
		if "$venv/bin/python" -m pip install --quiet --only-binary=:all: uv; then
			uv=$venv/bin/uv
		fi
	fi
fi

if [ -n "$uv" ]; then
	read_pip_config
	# Compiled to bytecode as pip does: the first start does not have to (or,
	# with PYTHONDONTWRITEBYTECODE set, every start).
	if (uv_settings && "$uv" pip install --quiet --compile-bytecode \
		--python "$venv/bin/python" $and_pip "$@"); then
		exit 0
	fi
	echo "uv could not install the packages; pip installs them instead." >&2
	if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
		venv_with_pip
	fi
fi
if [ -n "$new" ]; then
	# The pip a new virtualenv comes with may be old; a current one installs faster.
	"$venv/bin/python" -m pip install --quiet --upgrade pip
fi
"$venv/bin/python" -m pip install --quiet "$@"
