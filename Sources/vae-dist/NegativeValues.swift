import Foundation

// swift-argument-parser reads a word that starts with "-" as an option, so
// `--beta -1` ends in "Missing value for '--beta <beta>'" and never reaches the check
// that explains why -1 is wrong. vae-dist has no short options, so a negative number
// can only be a value: every `--name -N` is joined into `--name=-N`, which the parser
// already reads as a value. One rule here covers every option of every command,
// including options added later; flags given a number still fail (the parser says the
// flag takes no value).

/// The command line with each negative number that follows a long option joined to it.
func joiningNegativeValues(_ arguments: [String]) -> [String] {
    var out: [String] = []
    out.reserveCapacity(arguments.count)
    for (index, argument) in arguments.enumerated() {
        if argument == "--" {  // everything after a terminator is positional
            return out + arguments[index...]
        }
        if let previous = out.last, isLongOptionName(previous), isNegativeNumber(argument) {
            out[out.count - 1] = previous + "=" + argument
        } else {
            out.append(argument)
        }
    }
    return out
}

/// "--beta", not "--beta=1" (already has its value) nor "-h".
private func isLongOptionName(_ word: String) -> Bool {
    word.hasPrefix("--") && word.count > 2 && !word.contains("=")
}

/// "-1", "-0.5", "-.5", "-1e-3", "-inf": what Float and Int parse after a minus sign.
private func isNegativeNumber(_ word: String) -> Bool {
    guard word.hasPrefix("-"), word.count > 1 else { return false }
    let rest = word.dropFirst()
    guard let first = rest.first, first.isASCII, first.isNumber || first == "." || rest.lowercased().hasPrefix("inf") else { return false }
    return Double(word) != nil
}
