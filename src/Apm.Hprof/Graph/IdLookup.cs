using System.Numerics;
using System.Runtime.CompilerServices;

namespace Apm.Hprof.Graph;

/// <summary>
/// Maps object ids to dense indices over the sorted id array: an open-addressing hash table (linear probing) of
/// index + 1 per slot, at most two-thirds full. Ids are heap addresses, but a G1 heap's objects sit in regions
/// scattered over the whole reserved range (a 90 MB dump spans 3.2 GB of addresses), so a table on the id's high
/// bits had hundreds of ids per bucket; a hash has about one. Costs 6 to 12 bytes per object; a lookup costs a
/// multiply, about two loads of the table and one of the id array.
/// </summary>
internal sealed class IdLookup
{
    private readonly long[] _ids;
    private readonly int[] _slots;
    private readonly int _shift;
    private readonly int _mask;

    [MethodImpl(HotLoop.Options)]
    public IdLookup(long[] ids)
    {
        _ids = ids;
        int bits = Math.Max(4, 64 - BitOperations.LeadingZeroCount((ulong)ids.Length + ((ulong)ids.Length >> 1)));
        if (bits > 31) throw new OverflowException("too many objects for an id table");
        _shift = 64 - bits;
        _mask = (1 << bits) - 1;
        var slots = new int[1 << bits];
        for (int i = 0; i < ids.Length; i++)
        {
            int s = Slot(ids[i]);
            while (slots[s] != 0) s = (s + 1) & _mask;
            slots[s] = i + 1;
        }

        _slots = slots;
    }

    /// <summary>Dense index of <paramref name="id"/>, or -1 when no object has it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(long id)
    {
        var slots = _slots;
        int s = Slot(id);
        while (true)
        {
            int v = slots[s];
            if (v == 0) return -1;
            if (_ids[v - 1] == id) return v - 1;
            s = (s + 1) & _mask;
        }
    }

    /// <summary>
    /// As <see cref="Find"/>, first searching the ids within <see cref="NearWindow"/> places of index <paramref name="near"/>:
    /// most references point at objects allocated next to their holder, whose ids a pass in id order has in cache,
    /// while a hash probe is a cache miss or two.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int FindNear(long id, int near)
    {
        var ids = _ids;
        int lo = Math.Max(0, near - NearWindow), hi = Math.Min(ids.Length - 1, near + NearWindow);
        if (lo > hi || id < ids[lo] || id > ids[hi]) return Find(id);
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

    /// <summary>Fibonacci hashing of the id without its alignment bits (HotSpot ids are 8-byte aligned addresses).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Slot(long id) => (int)(((ulong)id >> 3) * 0x9E3779B97F4A7C15UL >> _shift);
}
