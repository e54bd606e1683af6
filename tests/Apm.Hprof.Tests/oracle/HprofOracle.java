// Independent oracle for retained sizes: VisualVM's heap library (Debian package visualvm).
// Usage: java -cp <visualvm jars>:. HprofOracle <file.hprof> <topN>
// Prints "OBJ <id> <class> <shallow> <retained>" for the N biggest objects by retained size,
// then "CLS <name> <count> <shallowTotal> <retainedByClass>" for every class with instances.
import java.io.File;
import org.graalvm.visualvm.lib.jfluid.heap.Heap;
import org.graalvm.visualvm.lib.jfluid.heap.HeapFactory;
import org.graalvm.visualvm.lib.jfluid.heap.Instance;
import org.graalvm.visualvm.lib.jfluid.heap.JavaClass;

public class HprofOracle {
    public static void main(String[] args) throws Exception {
        Heap heap = HeapFactory.createHeap(new File(args[0]));
        int n = Integer.parseInt(args[1]);
        long t0 = System.nanoTime();
        for (Instance i : heap.getBiggestObjectsByRetainedSize(n)) {
            System.out.println("OBJ " + i.getInstanceId() + " " + i.getJavaClass().getName() + " " + i.getSize() + " " + i.getRetainedSize());
        }
        for (JavaClass c : heap.getAllClasses()) {
            if (c.getInstancesCount() == 0) continue;
            System.out.println("CLS " + c.getName() + " " + c.getInstancesCount() + " " + c.getAllInstancesSize() + " " + c.getRetainedSizeByClass());
        }
        System.out.println("MILLIS " + (System.nanoTime() - t0) / 1_000_000);
    }
}
