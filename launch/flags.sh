# Shared by the launchers (sourced): their usage, required flags and quoting.

# Words joined into one shell command line, single-quoted where needed.
shell_join() {
  local out="" word
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
      out+=" $word"
    else
      out+=" '${word//\'/\'\\\'\'}'"
    fi
  done
  printf '%s' "${out# }"
}

# The calling script's usage lines (2-6 of its header comment); exit 0 when
# asked for (--help), else 2.
usage() {
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

unknown_argument() {
  echo "error: unknown argument $1 (flags for jaxsr.main go after --)" >&2
  exit 2
}

# require "--flag:value" ...: one error line for the first flag without a value.
require() {
  local pair
  for pair in "$@"; do
    if [ -z "${pair#*:}" ]; then
      echo "error: ${pair%%:*} is required (see --help)" >&2
      exit 2
    fi
  done
}
