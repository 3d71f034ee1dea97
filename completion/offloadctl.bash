# bash completion for offloadctl(1); installed as .../bash-completion/completions/offloadctl.
# Commands and options as `offloadctl --help` lists them (test/unit/man-pages.test.ts checks).
_offloadctl() {
    local cur prev words cword
    _init_completion || return

    local commands='status list show drift explain reload enforce watch check check-policy doctor'
    local common='--json --socket --help'
    local command= i
    for ((i = 1; i < cword; i++)); do
        case "${words[i]}" in
            --socket) ((i++)) ;;
            -*) ;;
            *) command="${words[i]}"; break ;;
        esac
    done

    case "$prev" in
        --socket) _filedir sock; return ;;
        --interface) COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur")); return ;;
        --event) COMPREPLY=($(compgen -W 'initial drift unenforceable flapping resync' -- "$cur")); return ;;
        --policy) _filedir '@(yaml|yml)'; return ;;
        --sysfs-root|--root) _filedir -d; return ;;
        --since|--feature|--limit|--window) return ;;
    esac

    if [[ -z "$command" ]]; then
        COMPREPLY=($(compgen -W "$commands --json --socket --help --version" -- "$cur"))
        return
    fi
    case "$command" in
        show|explain|enforce)
            if [[ "$cur" == -* ]]; then
                COMPREPLY=($(compgen -W "$common" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur"))
            fi ;;
        doctor)
            if [[ "$cur" == -* ]]; then
                COMPREPLY=($(compgen -W "$common --window --policy --sysfs-root --root" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur"))
            fi ;;
        drift)
            COMPREPLY=($(compgen -W "$common --since --interface --feature --event --limit" -- "$cur")) ;;
        check-policy)
            if [[ "$cur" == -* ]]; then
                COMPREPLY=($(compgen -W "$common --root --sysfs-root" -- "$cur"))
            else
                _filedir '@(yaml|yml)'
            fi ;;
        *)
            COMPREPLY=($(compgen -W "$common" -- "$cur")) ;;
    esac
} &&
    complete -F _offloadctl offloadctl
