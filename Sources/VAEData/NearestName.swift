// "Did you mean" for names a user mistypes (subcommands, built-in data sets).

/// The name in `names` closest to `word` by edit distance (insertions, deletions,
/// substitutions and swaps of neighbours), when it is close enough to be a typo: at most 2
/// edits, and fewer than half of the word's letters.
public func nearestName(_ word: String, among names: [String]) -> String? {
    let scored = names.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let (name, distance) = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return distance <= 2 && distance * 2 < max(word.count, 2) ? name : nil
}

/// Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a substring).
public func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a), y = Array(b)
    if x.isEmpty || y.isEmpty { return max(x.count, y.count) }
    var d = [[Int]](repeating: [Int](repeating: 0, count: y.count + 1), count: x.count + 1)
    for i in 0...x.count { d[i][0] = i }
    for j in 0...y.count { d[0][j] = j }
    for i in 1...x.count {
        for j in 1...y.count {
            let cost = x[i - 1] == y[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
        }
    }
    return d[x.count][y.count]
}
