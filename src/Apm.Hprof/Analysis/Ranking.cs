namespace Apm.Hprof.Analysis;

/// <summary>
/// Orders items (ints: object, class or group indices) by one or two long keys, biggest first, keeping the input order
/// among equal keys, as LINQ's OrderByDescending().ThenByDescending() does. One non-generic sort for every table of the
/// triage: each LINQ ordering over another element type is a few dozen more methods for the JIT to compile at the start
/// of every `apm triage` run.
/// </summary>
internal static class Ranking
{
    /// <summary>Up to this many first items are picked in one pass (the top of the dominator tree has about as many objects as the heap).</summary>
    private const int SelectLimit = 32;

    /// <summary>The first <paramref name="take"/> of <paramref name="items"/> by <paramref name="key"/> then <paramref name="then"/>, both descending.</summary>
    public static int[] Descending(ReadOnlySpan<int> items, Func<int, long> key, Func<int, long>? then = null, int take = int.MaxValue)
    {
        int n = items.Length;
        take = Math.Clamp(take, 0, n);
        if (then == null && take <= SelectLimit) return Select(items, key, take);
        var keys = new long[n];
        var positions = new int[n];
        for (int i = 0; i < n; i++)
        {
            keys[i] = key(items[i]);
            positions[i] = i;
        }

        if (then == null)
        {
            // ~k orders the keys the other way round for every long; equal keys then go back to their input order.
            for (int i = 0; i < n; i++) keys[i] = ~keys[i];
            Array.Sort(keys, positions);
            for (int start = 0; start < n;)
            {
                int end = start + 1;
                while (end < n && keys[end] == keys[start]) end++;
                if (end - start > 1) Array.Sort(positions, start, end - start);
                start = end;
            }
        }
        else
        {
            var thenKeys = new long[n];
            for (int i = 0; i < n; i++) thenKeys[i] = then(items[i]);
            Array.Sort(positions, (a, b) =>
            {
                int c = keys[b].CompareTo(keys[a]);
                if (c == 0) c = thenKeys[b].CompareTo(thenKeys[a]);
                return c != 0 ? c : a.CompareTo(b);
            });
        }

        var result = new int[take];
        for (int i = 0; i < take; i++) result[i] = items[positions[i]];
        return result;
    }

    /// <summary>The first <paramref name="take"/> by one pass over the items, keeping a short sorted list.</summary>
    private static int[] Select(ReadOnlySpan<int> items, Func<int, long> key, int take)
    {
        var bestKey = new long[take];
        var best = new int[take];
        int count = 0;
        foreach (var item in items)
        {
            long k = key(item);
            // An equal key comes later in the input, so it ranks after the ones already kept.
            if (count == take && (take == 0 || k <= bestKey[count - 1])) continue;
            int j = count == take ? count - 1 : count++;
            while (j > 0 && bestKey[j - 1] < k)
            {
                bestKey[j] = bestKey[j - 1];
                best[j] = best[j - 1];
                j--;
            }

            bestKey[j] = k;
            best[j] = item;
        }

        return best;
    }
}
