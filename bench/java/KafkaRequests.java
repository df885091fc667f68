// Prints the broker's request counts by type as JSON: {"Produce": 123, "Fetch": 456, …}.
//
//     java bench/java/KafkaRequests.java <broker pid>
//
// Attaches to the running broker (the JDK's Attach API: same user, no JMX port),
// starts its local management agent and sums Kafka's own counters
// kafka.network:type=RequestMetrics,name=RequestsPerSec over every version of
// each request type. The bench reads them before and after a run.
import com.sun.tools.attach.VirtualMachine;
import java.util.Map;
import java.util.TreeMap;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class KafkaRequests {
    public static void main(String[] args) throws Exception {
        VirtualMachine vm = VirtualMachine.attach(args[0]);
        String address = vm.startLocalManagementAgent();
        vm.detach();
        try (JMXConnector connector = JMXConnectorFactory.connect(new JMXServiceURL(address))) {
            MBeanServerConnection server = connector.getMBeanServerConnection();
            Map<String, Long> counts = new TreeMap<>();
            ObjectName pattern = new ObjectName("kafka.network:type=RequestMetrics,name=RequestsPerSec,*");
            for (ObjectName name : server.queryNames(pattern, null)) {
                long count = ((Number) server.getAttribute(name, "Count")).longValue();
                counts.merge(name.getKeyProperty("request"), count, Long::sum);
            }
            StringBuilder json = new StringBuilder("{");
            for (Map.Entry<String, Long> entry : counts.entrySet()) {
                if (json.length() > 1) json.append(", ");
                json.append('"').append(entry.getKey()).append("\": ").append(entry.getValue());
            }
            System.out.println(json.append('}'));
        }
    }
}
