using System.Runtime.CompilerServices;

namespace Apm.Hprof.Graph;

/// <summary>
/// Maps object ids to dense indices over the sorted id array: a bucket table on the id's high bits narrows the
/// binary search to a few entries. About one int per object; a lookup costs a shift, two loads and a search of a
/// range. A G1 heap's regions are scattered over its whole reserved range (a 90 MB dump spans 3.2 GB of addresses),
/// so the busy buckets of a small dump hold hundreds of ids: <see cref="FindNear"/> first looks beside the holder,
/// where most references point. (An open-addressing hash table measured faster on the 90 MB dump and slower on the
/// 870 MB one, whose table is bigger than the caches: two misses a lookup against a bucket and a search in one run.)
/// </summary>
internal sealed class IdLookup
{
    private readonly long[] _ids;
    private readonly int[] _bucketStart;
    private readonly long _min;
    private readonly int _shift;
    private readonly int _buckets;

    [MethodImpl(HotLoop.Options)]
    public IdLookup(long[] ids)
    {
        _ids = ids;
        if (ids.Length == 0)
        {
            _bucketStart = [0, 0];
            return;
        }

        _min = ids[0];
        ulong span = (ulong)(ids[^1] - ids[0]) + 1;
        int targetBits = Math.Clamp(64 - (int)ulong.LeadingZeroCount((ulong)ids.Length), 1, 24);
        int spanBits = 64 - (int)ulong.LeadingZeroCount(span);
        _shift = Math.Max(0, spanBits - targetBits);
        _buckets = (int)((span - 1) >> _shift) + 1;
        _bucketStart = new int[_buckets + 1];
        int b = 0;
        for (int i = 0; i < ids.Length; i++)
        {
            int bucket = (int)((ulong)(ids[i] - _min) >> _shift);
            while (b <= bucket) _bucketStart[b++] = i;
        }

        while (b <= _buckets) _bucketStart[b++] = ids.Length;
    }

    /// <summary>Dense index of <paramref name="id"/>, or -1 when no object has it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(long id)
    {
        ulong rel = (ulong)(id - _min);
        if (id < _min || (rel >> _shift) >= (ulong)_buckets) return -1;
        int bucket = (int)(rel >> _shift);
        return Search(_ids, id, _bucketStart[bucket], _bucketStart[bucket + 1] - 1);
    }

    /// <summary>
    /// As <see cref="Find"/>, first searching the ids within <see cref="NearWindow"/> places of index <paramref name="near"/>:
    /// most references point at objects allocated next to their holder, whose ids a pass in id order has in cache,
    /// while a bucket and its search are a cache miss or more.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int FindNear(long id, int near)
    {
        var ids = _ids;
        int lo = Math.Max(0, near - NearWindow), hi = Math.Min(ids.Length - 1, near + NearWindow);
        return lo > hi || id < ids[lo] || id > ids[hi] ? Find(id) : Search(ids, id, lo, hi);
    }

    /// <summary>Binary search of <paramref name="id"/> in ids[<paramref name="lo"/>..<paramref name="hi"/>]; -1 when absent.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Search(long[] ids, long id, int lo, int hi)
    {
        while (lo <= hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            long v = ids[mid];
            if (v == id) return mid;
            if (v < id) lo = mid + 1;
            else hi = mid - 1;
        }

        return -1;
    }

    /// <summary>How far from the holder <see cref="FindNear"/> looks first (64 ids: a kilobyte of the id array).</summary>
    private const int NearWindow = 64;
}
