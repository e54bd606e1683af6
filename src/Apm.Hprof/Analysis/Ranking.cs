namespace Apm.Hprof.Analysis;

/// <summary>
/// Orders items (ints: object, class or group indices) by one or two long keys, biggest first, keeping the input order
/// among equal keys, as LINQ's OrderByDescending().ThenByDescending() does. One non-generic sort for every table of the
/// triage: each LINQ ordering over another element type is a few dozen more methods for the JIT to compile at the start
/// of every `apm triage` run.
/// </summary>
internal static class Ranking
{
    /// <summary>The first <paramref name="take"/> of <paramref name="items"/> by <paramref name="key"/> then <paramref name="then"/>, both descending.</summary>
    public static int[] Descending(ReadOnlySpan<int> items, Func<int, long> key, Func<int, long>? then = null, int take = int.MaxValue)
    {
        int n = items.Length;
        var keys = new long[n];
        var thenKeys = then == null ? null : new long[n];
        var positions = new int[n];
        for (int i = 0; i < n; i++)
        {
            keys[i] = key(items[i]);
            if (thenKeys != null) thenKeys[i] = then!(items[i]);
            positions[i] = i;
        }

        Array.Sort(positions, (a, b) =>
        {
            int c = keys[b].CompareTo(keys[a]);
            if (c == 0 && thenKeys != null) c = thenKeys[b].CompareTo(thenKeys[a]);
            return c != 0 ? c : a.CompareTo(b);
        });
        var result = new int[Math.Min(n, Math.Max(0, take))];
        for (int i = 0; i < result.Length; i++) result[i] = items[positions[i]];
        return result;
    }
}
