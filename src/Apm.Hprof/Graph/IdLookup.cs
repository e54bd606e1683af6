using System.Runtime.CompilerServices;

namespace Apm.Hprof.Graph;

/// <summary>
/// Maps object ids to dense indices over the sorted id array: a bucket table on the id's high bits narrows the
/// binary search to a few entries (ids are heap addresses, so they spread evenly). About one int per object; a
/// lookup costs a shift, two loads and a search of a range that averages one entry.
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
        var ids = _ids;
        int lo = _bucketStart[bucket], hi = _bucketStart[bucket + 1] - 1;
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
}
