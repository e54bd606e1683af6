using System.Buffers.Binary;
using System.Text;
using Apm.Hprof.Reader;

namespace Apm.Hprof.Tests;

/// <summary>Writes tiny synthetic HPROF dumps for tests (after Shark's HprofWriter), with 4- or 8-byte ids.</summary>
internal sealed class HprofWriter(int idSize = 8, bool segments = true)
{
    private readonly MemoryStream _top = new();
    private readonly List<byte[]> _sub = [];
    private readonly Dictionary<long, (long Super, (string Name, HprofBasicType Type)[] Fields)> _classes = [];
    private long _nextId = 0x1000;
    private int _classSerial;

    public int IdSize => idSize;

    public long NewId() => _nextId += 16;

    public long String(string text)
    {
        var id = NewId();
        var bytes = Encoding.UTF8.GetBytes(text);
        Top(HprofTag.Utf8, w => { w.Id(id); w.Bytes(bytes); });
        return id;
    }

    public long Class(string name, long superId, (string Name, HprofBasicType Type)[] fields, (string Name, HprofBasicType Type, long Value)[]? statics = null)
    {
        var id = NewId();
        var nameId = String(name);
        var serial = ++_classSerial;
        Top(HprofTag.LoadClass, w => { w.U4(serial); w.Id(id); w.U4(0); w.Id(nameId); });
        var fieldNames = fields.Select(f => String(f.Name)).ToArray();
        var staticNames = (statics ?? []).Select(s => String(s.Name)).ToArray();
        _classes[id] = (superId, fields);
        Sub(w =>
        {
            w.U1(HprofTag.ClassDump);
            w.Id(id);
            w.U4(0);
            w.Id(superId);
            for (int i = 0; i < 5; i++) w.Id(0);
            w.U4(fields.Sum(f => HprofTypes.SizeOf(f.Type, idSize)));
            w.U2(0);
            w.U2((statics ?? []).Length);
            for (int i = 0; i < (statics ?? []).Length; i++)
            {
                w.Id(staticNames[i]);
                w.U1((int)statics![i].Type);
                w.Value(statics[i].Type, statics[i].Value);
            }

            w.U2(fields.Length);
            for (int i = 0; i < fields.Length; i++)
            {
                w.Id(fieldNames[i]);
                w.U1((int)fields[i].Type);
            }
        });
        return id;
    }

    public long Instance(long classId, params long[] values)
    {
        var id = NewId();
        var layout = new List<HprofBasicType>();
        for (long c = classId; c != 0 && _classes.TryGetValue(c, out var cls); c = cls.Super) layout.AddRange(cls.Fields.Select(f => f.Type));
        if (layout.Count != values.Length) throw new ArgumentException("value count does not match the class layout");
        var body = new Buf(idSize);
        for (int i = 0; i < values.Length; i++) body.Value(layout[i], values[i]);
        var data = body.ToArray();
        Sub(w => { w.U1(HprofTag.InstanceDump); w.Id(id); w.U4(0); w.Id(classId); w.U4(data.Length); w.Bytes(data); });
        return id;
    }

    public long ObjectArray(long arrayClassId, params long[] elements)
    {
        var id = NewId();
        Sub(w => { w.U1(HprofTag.ObjectArrayDump); w.Id(id); w.U4(0); w.U4(elements.Length); w.Id(arrayClassId); foreach (var e in elements) w.Id(e); });
        return id;
    }

    public long PrimitiveArray(HprofBasicType type, int length)
    {
        var id = NewId();
        Sub(w => { w.U1(HprofTag.PrimitiveArrayDump); w.Id(id); w.U4(0); w.U4(length); w.U1((int)type); w.Bytes(new byte[length * HprofTypes.SizeOf(type, idSize)]); });
        return id;
    }

    public void Root(HprofRootKind kind, long objectId, int threadSerial = 1)
    {
        Sub(w =>
        {
            w.U1((int)kind);
            w.Id(objectId);
            switch (kind)
            {
                case HprofRootKind.JniGlobal: w.Id(0); break;
                case HprofRootKind.JniLocal or HprofRootKind.JavaFrame or HprofRootKind.JniMonitor or HprofRootKind.ThreadObject: w.U4(threadSerial); w.U4(0); break;
                case HprofRootKind.NativeStack or HprofRootKind.ThreadBlock: w.U4(threadSerial); break;
            }
        });
    }

    public byte[] ToArray()
    {
        var outp = new Buf(idSize);
        outp.Bytes(Encoding.ASCII.GetBytes("JAVA PROFILE 1.0.2\0"));
        outp.U4(idSize);
        outp.U4(0);
        outp.U4(0);
        outp.Bytes(_top.ToArray());
        if (segments)
        {
            foreach (var chunk in _sub.Chunk(3)) Record(outp, HprofTag.HeapDumpSegment, chunk.SelectMany(x => x).ToArray());
            Record(outp, HprofTag.HeapDumpEnd, []);
        }
        else
        {
            Record(outp, HprofTag.HeapDump, _sub.SelectMany(x => x).ToArray());
        }

        return outp.ToArray();
    }

    private static void Record(Buf b, int tag, byte[] body)
    {
        b.U1(tag);
        b.U4(0);
        b.U4(body.Length);
        b.Bytes(body);
    }

    private void Top(int tag, Action<Buf> body)
    {
        var b = new Buf(idSize);
        body(b);
        var bytes = b.ToArray();
        var rec = new Buf(idSize);
        Record(rec, tag, bytes);
        _top.Write(rec.ToArray());
    }

    private void Sub(Action<Buf> body)
    {
        var b = new Buf(idSize);
        body(b);
        _sub.Add(b.ToArray());
    }

    private sealed class Buf(int idSize)
    {
        private readonly MemoryStream _s = new();

        public void U1(int v) => _s.WriteByte((byte)v);

        public void U2(int v)
        {
            Span<byte> b = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)v);
            _s.Write(b);
        }

        public void U4(long v)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(b, (uint)v);
            _s.Write(b);
        }

        public void U8(long v)
        {
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteInt64BigEndian(b, v);
            _s.Write(b);
        }

        public void Id(long v)
        {
            if (idSize == 8) U8(v);
            else U4(v);
        }

        public void Value(HprofBasicType t, long v)
        {
            switch (HprofTypes.SizeOf(t, idSize))
            {
                case 1: U1((int)v); break;
                case 2: U2((int)v); break;
                case 4: U4(v); break;
                default: U8(v); break;
            }
        }

        public void Bytes(byte[] b) => _s.Write(b);

        public byte[] ToArray() => _s.ToArray();
    }
}
