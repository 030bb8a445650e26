# bash completion for soffa(1): its commands, their words and options.
# Installed as share/bash-completion/completions/soffa. The test suite checks
# that every command `soffa --help` lists is offered here.

_soffa()
{
    local cur prev words cword
    _init_completion || return

    local globals="--socket --net --agent --json --help --version"
    local commands="signal ack answer case consent refer referral concern identity send
        inbox show watch status retry import sync pending approve reject replay history
        access-log stats erase verify backup up down keygen masterkey user check-id"
    local types="enrolment_changed absence_reported at_risk_notice signal_acknowledged
        early_warning_answered year9_handover admission_not_started
        kaa_case_opened contact_attempted occupation_recorded plan_agreed measure_started
        measure_ended kaa_case_closed consent_recorded consent_withdrawn referral_sent
        referral_status_changed referral_withdrawn concern_report_filed
        concern_report_feedback subject_identity_changed kaa_case_reopened case_owner_changed
        case_transferred case_mapped"
    local message_opts="--pupil --reserve-id --hemkommun --district --protected --re --consent
        --occurred --legal-basis --actor --wait --json --help"

    # The values of global options.
    case $prev in
    --socket)
        _filedir
        return
        ;;
    --net)
        _filedir -d
        return
        ;;
    --agent)
        # The agents of the network given with --net.
        local i net=
        for ((i = 1; i < cword; i++)); do
            [[ ${words[i]} == --net ]] && net=${words[i + 1]}
        done
        if [[ -n $net && -d $net ]]; then
            local names=$(cd "$net" 2>/dev/null && for d in */; do [[ -f $d/agent.ini ]] && printf '%s ' "${d%/}"; done)
            COMPREPLY=($(compgen -W "$names" -- "$cur"))
        fi
        return
        ;;
    esac

    # Find the command: the first word that is neither a global option nor
    # the value of one.
    local i cmd= sub= ci=0
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        --socket | --net | --agent) ((i++)) ;;
        --json) ;;
        -*) ;;
        *)
            if [[ -z $cmd ]]; then
                cmd=${words[i]}
                ci=$i
            elif [[ -z $sub && $i -eq $((ci + 1)) ]]; then
                sub=${words[i]}
            fi
            ;;
        esac
    done

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$globals" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    # Commands that take a second word.
    local kinds=
    case $cmd in
    signal) kinds="enrolment absence at-risk year9 not-started" ;;
    case) kinds="open contact map occupation plan measure-start measure-end close reopen owner transfer" ;;
    consent) kinds="record withdraw" ;;
    refer) kinds="af social provider school kaa" ;;
    referral) kinds="status withdraw" ;;
    concern) kinds="report feedback" ;;
    identity) kinds="change" ;;
    send) kinds=$types ;;
    esac
    if [[ -n $kinds && -z $sub ]]; then
        COMPREPLY=($(compgen -W "$kinds" -- "$cur"))
        return
    fi

    # Option values that are files or directories.
    case $prev in
    --config | --key | --html)
        _filedir
        return
        ;;
    esac

    local opts=
    case $cmd in
    signal | ack | answer | case | consent | refer | referral | concern | identity | send) opts=$message_opts ;;
    inbox) opts="--failed --after --limit --json --help" ;;
    show | retry) opts="--json --help" ;;
    watch) opts="--all --json --help" ;;
    status) opts="--sample --json --help" ;;
    import)
        opts="--format --dry-run --skip-bad --since --json --help"
        [[ $prev == --format ]] && { COMPREPLY=($(compgen -W "csv ss12000" -- "$cur")); return; }
        [[ $cur != -* ]] && { _filedir '@(csv|json)'; return; }
        ;;
    sync)
        opts="--url --token-file --dry-run --json --help"
        [[ $cur != -* && -z $sub ]] && { COMPREPLY=($(compgen -W "ss12000" -- "$cur")); return; }
        [[ $prev == --token-file ]] && { _filedir; return; }
        ;;
    pending) opts="--json --help" ;;
    user)
        opts="--config --role --password-file --sso --json --help"
        [[ $cur != -* && -z $sub ]] && { COMPREPLY=($(compgen -W "add passwd remove list" -- "$cur")); return; }
        [[ $prev == --role ]] && { COMPREPLY=($(compgen -W "caseworker lead" -- "$cur")); return; }
        ;;
    approve | reject) opts="--json --help" ;;
    replay) opts="--mailbox --pupil --type --from --to --from-seq --to-seq --limit --json --help" ;;
    history) opts="--pupil --as-of --limit --json --help" ;;
    access-log) opts="--pupil --from --to --limit --json --help" ;;
    stats) opts="--municipality --from --to --half-year --export --json --csv --html --help" ;;
    erase)
        [[ $prev == --reason ]] && { COMPREPLY=($(compgen -W "ERRONEOUS_REGISTRATION WRONG_IDENTITY NO_LEGAL_BASIS SUBJECT_REQUEST OTHER" -- "$cur")); return; }
        opts="--pupil --reason --json --help"
        ;;
    verify)
        opts="--key --against --master-key --max-unsigned --json --help"
        [[ $cur != -* ]] && { _filedir -d; return; }
        ;;
    backup)
        opts="--config --key --json --help"
        [[ $cur != -* ]] && { _filedir -d; return; }
        ;;
    up | down)
        opts="--json --help"
        [[ $cur != -* ]] && { _filedir -d; return; }
        ;;
    keygen) opts="--help" ;;
    masterkey)
        [[ -z $sub ]] && { COMPREPLY=($(compgen -W "new --help" -- "$cur")); return; }
        _filedir
        return
        ;;
    check-id) opts="--today --json --help" ;;
    esac
    [[ $prev == --type ]] && { COMPREPLY=($(compgen -W "$types" -- "$cur")); return; }
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _soffa soffa
