# bash completion for piflash(1)                                  -*- shell-script -*-
#
# Options and commands are read from the program's own --help (so they are always the ones
# it takes); option values, image files, card devices, and PART:/path inside an image for
# `ls`, `cat` and `--add` (by running `piflash ls`, at most a few seconds).

# _piflash_help PROG [COMMAND]
_piflash_help()
{
    LC_ALL=C "$1" ${2:+"$2"} --help 2>/dev/null
}

# Options of PROG [COMMAND]: long ones, and short ones that have no long form.
_piflash_options()
{
    _piflash_help "$@" | sed -nE \
        -e 's/^ {1,7}(-[a-zA-Z] +)?(--[a-z0-9-]+).*/\2/p' \
        -e 's/^ {1,7}(-[a-zA-Z])( .*)?$/\1/p'
}

# Options of PROG [COMMAND] that take a value: "--node NAME", "-j --jobs N".
_piflash_options_with_value()
{
    _piflash_help "$@" | sed -nE \
        -e 's/^ {1,7}-([a-zA-Z]) +(--[a-z0-9-]+) [^ ].*/-\1 \2/p' \
        -e 's/^ {1,7}(--[a-z0-9-]+) [^ ].*/\1/p'
}

_piflash_commands()
{
    _piflash_help "$1" | sed -nE '/^Commands:/,/^$/s/^  ([a-z]+) .*/\1/p'
}

# Whole disks a card could be: removable ones, USB, SD cards and loop devices with a file.
_piflash_devices()
{
    local d name
    for d in /sys/block/*; do
        name=${d##*/}
        [[ -r $d/size && $(<"$d/size") != 0 ]] || continue
        if [[ $name == loop* || $name == mmcblk* || $(<"$d/removable") == 1 ]] ||
            [[ $(readlink -f "$d") == */usb* ]]; then
            printf '/dev/%s\n' "$name"
        fi
    done
}

# Hostnames of the inventory named on the command line (first column named hostname).
_piflash_hostnames()
{
    local i inv=""
    for ((i = 1; i < ${#words[@]}; i++)); do
        [[ ${words[i]} == --inventory ]] && inv=${words[i + 1]}
        [[ ${words[i]} == --inventory=* ]] && inv=${words[i]#--inventory=}
    done
    inv=${inv/#\~/$HOME}
    [[ -r $inv ]] || return
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "hostname") c = i; next }
             c { print $c }' "$inv" 2>/dev/null
}

# PART:/path inside IMAGE: the partitions ("2:", "root:"), then the entries of a directory.
_piflash_image_path()
{
    local prog=$1 image=$2 cur=$3 dir base part
    image=${image/#\~/$HOME}
    [[ -f $image ]] || return
    if [[ $cur != *:* && $cur != /* ]]; then
        COMPREPLY=($(compgen -W "$(timeout 5 "$prog" inspect "$image" 2>/dev/null |
            awk '/^ *[0-9]+ / { print $1 ":/"; if ($(NF-1) != "-") print $(NF-1) ":/" }')" \
            -- "$cur"))
        compopt -o nospace 2>/dev/null
        return
    fi
    dir=${cur%/*}/
    [[ $dir == */ && $dir != *:/* && $dir != /* ]] && return
    part=${dir%%/*}
    COMPREPLY=($(timeout 5 "$prog" ls -l "$image" "$dir" 2>/dev/null |
        sed -nE 's/^(.)[^ ]* +[0-9]+ +[0-9]+ +[0-9]+ [0-9-]+ [0-9:]+ (.*)$/\1 \2/p' |
        while read -r kind name; do
            name=${name%% -> *}
            [[ $name == . || $name == .. ]] && continue
            [[ $kind == d ]] && name+=/
            printf '%s\n' "$dir$name"
        done | grep -F -- "$cur"))
    COMPREPLY=($(compgen -W "${COMPREPLY[*]}" -- "$cur"))
    compopt -o nospace 2>/dev/null
}

# Readline replaces only the text after the last ':' or '=' of the word (COMP_WORDBREAKS):
# drops what comes before it from the candidates.
_piflash_ltrim()
{
    local pre=${1%"${1##*[:=]}"}
    [[ -n $pre ]] && COMPREPLY=("${COMPREPLY[@]#"$pre"}")
}

_piflash()
{
    local cur prev words cword split
    _init_completion -s -n : || return

    local prog=${words[0]} cmd="" i first=1
    local commands
    commands=$(_piflash_commands "$prog")
    if [[ $cword -gt 1 && " "$commands" " == *[[:space:]]${words[1]}[[:space:]]* ]]; then
        cmd=${words[1]}
        first=2
    fi

    case $prev in
        --inventory)
            _filedir csv
            return
            ;;
        --ssh-key | --wifi-psk-file | --user-data | --instance-id-seed-file | \
            --known-hosts | --record)
            _filedir
            return
            ;;
        --template-dir | --out-dir)
            _filedir -d
            return
            ;;
        --format)
            COMPREPLY=($(compgen -W "img img.zst img.xz img.gz" -- "$cur"))
            return
            ;;
        --progress)
            COMPREPLY=($(compgen -W "auto bar json none" -- "$cur"))
            return
            ;;
        --on-error)
            COMPREPLY=($(compgen -W "ask skip stop" -- "$cur"))
            return
            ;;
        --flavor)
            COMPREPLY=($(compgen -W "hypriot ubuntu rpios-trixie rpios-bookworm raspbian
                debian" -- "$cur"))
            return
            ;;
        --network)
            COMPREPLY=($(compgen -W "cloud-init netplan ifupdown networkmanager networkd
                dhcpcd" -- "$cur"))
            return
            ;;
        --board)
            COMPREPLY=($(compgen -W "pi1 pi2 pi3 pi4 pi5 zero zero2 cm3 cm4 cm5" -- "$cur"))
            return
            ;;
        --node | --only | --exclude)
            COMPREPLY=($(compgen -W "$(_piflash_hostnames)" -- "${cur##*,}"))
            return
            ;;
        --add)
            if [[ $cur == *=* ]]; then
                local local_file=${cur%%=*} image=""
                # The IMAGE is the first positional after the options, if already typed.
                for ((i = first; i < ${#words[@]}; i++)); do
                    [[ $i -eq $cword || ${words[i]} == -* || ${words[i - 1]} == --add ]] &&
                        continue
                    image=${words[i]}
                    break
                done
                _piflash_image_path "$prog" "$image" "${cur#*=}"
                COMPREPLY=("${COMPREPLY[@]/#/$local_file=}")
                _piflash_ltrim "$cur"
            else
                _filedir
            fi
            return
            ;;
    esac
    $split && return

    local with_value
    with_value=" $(_piflash_options_with_value "$prog" $cmd | tr '\n' ' ') "

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_piflash_options "$prog" $cmd) $([[ -z $cmd ]] &&
            echo --version -V)" -- "$cur"))
        return
    fi

    # The positional arguments before this one.
    local -a args=()
    for ((i = first; i < cword; i++)); do
        if [[ ${words[i]} == -* ]]; then
            [[ $with_value == *" ${words[i]} "* ]] && ((i++))
            continue
        fi
        args+=("${words[i]}")
    done

    case $cmd:${#args[@]} in
        :0)
            [[ $cword -eq 1 ]] && COMPREPLY=($(compgen -W "$commands" -- "$cur"))
            _filedir
            ;;
        :* | verify:1)
            COMPREPLY=($(compgen -W "$(_piflash_devices)" -- "$cur"))
            _filedir
            ;;
        ls:1 | cat:1)
            _piflash_image_path "$prog" "${args[0]}" "$cur"
            _piflash_ltrim "$cur"
            ;;
        cache:0)
            COMPREPLY=($(compgen -W "clean" -- "$cur"))
            ;;
        devices:* | cache:* | *:1 | *:2) ;;
        *)
            _filedir
            ;;
    esac
} &&
    complete -F _piflash piflash

# ex: filetype=sh
