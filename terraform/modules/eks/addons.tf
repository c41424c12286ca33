# --- cluster add-ons installed with Helm (docs/adr/0033) ---------------------------------
# Karpenter (node autoscaling), the AWS Load Balancer Controller (the ALB Ingress), the
# External Secrets Operator (the services' Secrets) and Reloader (restarts on rotation).
# Each controller assumes its own IAM role through IRSA, like the services (eks.tf).

locals {
  # Exact chart versions: a controller changes only in a reviewed commit.
  charts = {
    karpenter                    = { repository = "oci://public.ecr.aws/karpenter", version = "1.14.1" }
    aws-load-balancer-controller = { repository = "https://aws.github.io/eks-charts", version = "3.5.0" }
    external-secrets             = { repository = "https://charts.external-secrets.io", version = "2.0.1" }
    reloader                     = { repository = "https://stakater.github.io/stakater-charts", version = "2.2.16" }
  }

  # Controller -> its ServiceAccount and IAM policy. external-secrets is the SecretStore's
  # ServiceAccount in the release's namespace (the chart renders it), not the operator's:
  # the operator assumes the role with that ServiceAccount's token.
  controllers = {
    karpenter = {
      namespace       = "kube-system"
      service_account = "karpenter"
      policy          = local.karpenter_policy
    }
    aws-load-balancer-controller = {
      namespace       = "kube-system"
      service_account = "aws-load-balancer-controller"
      # The controller's documented policy (docs/install/iam_policy.json of v3.5.0).
      policy = file("${path.module}/policies/aws-load-balancer-controller.json")
    }
    external-secrets = {
      namespace       = var.namespace
      service_account = local.service_account_names["external-secrets"]
      policy = jsonencode({
        Version = "2012-10-17"
        Statement = [
          {
            Sid      = "ReadSyncedSecrets"
            Effect   = "Allow"
            Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
            Resource = local.external_secret_arns
          },
          {
            Sid       = "DecryptSyncedSecrets"
            Effect    = "Allow"
            Action    = ["kms:Decrypt"]
            Resource  = [aws_kms_key.this.arn]
            Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${data.aws_region.this.name}.amazonaws.com" } }
          },
        ]
      })
    }
  }
}

resource "aws_iam_role" "controller" {
  for_each = local.controllers

  name               = "${var.name}-${each.key}"
  tags               = local.tags
  assume_role_policy = local.irsa_trust[each.key]
}

resource "aws_iam_role_policy" "controller" {
  for_each = local.controllers

  name   = each.key
  role   = aws_iam_role.controller[each.key].id
  policy = each.value.policy
}

# --- Karpenter ---------------------------------------------------------------------------
# The managed node group (eks.tf) is the fixed system pool that runs the controllers;
# Karpenter adds and consolidates the nodes the services' HPAs need.

resource "aws_iam_role" "karpenter_node" {
  name = "${var.name}-karpenter-node"
  tags = local.tags

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "karpenter_node" {
  for_each = local.node_policies

  role       = aws_iam_role.karpenter_node.name
  policy_arn = "arn:${data.aws_partition.this.partition}:iam::aws:policy/${each.value}"
}

# Terraform owns the instance profile, so Karpenter needs no IAM write access.
resource "aws_iam_instance_profile" "karpenter_node" {
  name = "${var.name}-karpenter-node"
  role = aws_iam_role.karpenter_node.name
  tags = local.tags
}

# The cluster authenticates with access entries only (authentication_mode API).
resource "aws_eks_access_entry" "karpenter_node" {
  cluster_name  = aws_eks_cluster.this.name
  principal_arn = aws_iam_role.karpenter_node.arn
  type          = "EC2_LINUX"
  tags          = local.tags
}

# Spot interruptions, rebalance recommendations, scheduled maintenance and instance state
# changes reach Karpenter through this queue, so it drains a node before EC2 takes it.
resource "aws_sqs_queue" "karpenter" {
  name                      = "${var.name}-karpenter"
  message_retention_seconds = 300
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

resource "aws_sqs_queue_policy" "karpenter" {
  queue_url = aws_sqs_queue.karpenter.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "EventBridgeSends"
        Effect    = "Allow"
        Principal = { Service = ["events.amazonaws.com", "sqs.amazonaws.com"] }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.karpenter.arn
      },
      {
        Sid       = "DenyHTTP"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = aws_sqs_queue.karpenter.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

locals {
  karpenter_events = {
    health               = { source = "aws.health", detail_type = "AWS Health Event" }
    spot-interruption    = { source = "aws.ec2", detail_type = "EC2 Spot Instance Interruption Warning" }
    rebalance            = { source = "aws.ec2", detail_type = "EC2 Instance Rebalance Recommendation" }
    instance-state       = { source = "aws.ec2", detail_type = "EC2 Instance State-change Notification" }
    capacity-reservation = { source = "aws.ec2", detail_type = "EC2 Capacity Reservation Instance Interruption Warning" }
  }
}

resource "aws_cloudwatch_event_rule" "karpenter" {
  for_each = local.karpenter_events

  name          = "${var.name}-karpenter-${each.key}"
  description   = "${each.value.detail_type} to Karpenter's interruption queue"
  event_pattern = jsonencode({ source = [each.value.source], detail-type = [each.value.detail_type] })
  tags          = local.tags
}

resource "aws_cloudwatch_event_target" "karpenter" {
  for_each = local.karpenter_events

  rule      = aws_cloudwatch_event_rule.karpenter[each.key].name
  target_id = "karpenter-interruption-queue"
  arn       = aws_sqs_queue.karpenter.arn
}

# Karpenter's documented controller policy (getting-started cloudformation.yaml of v1.14),
# less instance profile management, which Terraform does above.
locals {
  ec2_arn = "arn:${data.aws_partition.this.partition}:ec2:${data.aws_region.this.name}"
  karpenter_owned = {
    "aws:RequestTag/kubernetes.io/cluster/${var.name}" = "owned"
    "aws:RequestTag/eks:eks-cluster-name"              = var.name
  }
  karpenter_launched = [for r in ["fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request"] : "${local.ec2_arn}:*:${r}/*"]

  karpenter_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "AllowScopedEC2InstanceAccessActions"
        Effect = "Allow"
        Action = ["ec2:RunInstances", "ec2:CreateFleet"]
        Resource = concat(
          ["${local.ec2_arn}::image/*", "${local.ec2_arn}::snapshot/*"],
          [for r in ["security-group", "subnet", "capacity-reservation", "placement-group"] : "${local.ec2_arn}:*:${r}/*"],
        )
      },
      {
        Sid      = "AllowScopedEC2LaunchTemplateAccessActions"
        Effect   = "Allow"
        Action   = ["ec2:RunInstances", "ec2:CreateFleet"]
        Resource = "${local.ec2_arn}:*:launch-template/*"
        Condition = {
          StringEquals = { "aws:ResourceTag/kubernetes.io/cluster/${var.name}" = "owned" }
          StringLike   = { "aws:ResourceTag/karpenter.sh/nodepool" = "*" }
        }
      },
      {
        Sid      = "AllowScopedEC2InstanceActionsWithTags"
        Effect   = "Allow"
        Action   = ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"]
        Resource = local.karpenter_launched
        Condition = {
          StringEquals = local.karpenter_owned
          StringLike   = { "aws:RequestTag/karpenter.sh/nodepool" = "*" }
        }
      },
      {
        Sid      = "AllowScopedResourceCreationTagging"
        Effect   = "Allow"
        Action   = "ec2:CreateTags"
        Resource = local.karpenter_launched
        Condition = {
          StringEquals = merge(local.karpenter_owned, { "ec2:CreateAction" = ["RunInstances", "CreateFleet", "CreateLaunchTemplate"] })
          StringLike   = { "aws:RequestTag/karpenter.sh/nodepool" = "*" }
        }
      },
      {
        Sid      = "AllowScopedResourceTagging"
        Effect   = "Allow"
        Action   = "ec2:CreateTags"
        Resource = "${local.ec2_arn}:*:instance/*"
        Condition = {
          StringEquals                = { "aws:ResourceTag/kubernetes.io/cluster/${var.name}" = "owned" }
          StringLike                  = { "aws:ResourceTag/karpenter.sh/nodepool" = "*" }
          StringEqualsIfExists        = { "aws:RequestTag/eks:eks-cluster-name" = var.name }
          "ForAllValues:StringEquals" = { "aws:TagKeys" = ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"] }
        }
      },
      {
        Sid      = "AllowScopedDeletion"
        Effect   = "Allow"
        Action   = ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"]
        Resource = ["${local.ec2_arn}:*:instance/*", "${local.ec2_arn}:*:launch-template/*"]
        Condition = {
          StringEquals = { "aws:ResourceTag/kubernetes.io/cluster/${var.name}" = "owned" }
          StringLike   = { "aws:ResourceTag/karpenter.sh/nodepool" = "*" }
        }
      },
      {
        Sid    = "AllowRegionalReadActions"
        Effect = "Allow"
        Action = [
          "ec2:DescribeCapacityReservations",
          "ec2:DescribeImages",
          "ec2:DescribeInstances",
          "ec2:DescribeInstanceStatus",
          "ec2:DescribeInstanceTypeOfferings",
          "ec2:DescribeInstanceTypes",
          "ec2:DescribeLaunchTemplates",
          "ec2:DescribePlacementGroups",
          "ec2:DescribeSecurityGroups",
          "ec2:DescribeSpotPriceHistory",
          "ec2:DescribeSubnets",
        ]
        Resource  = "*"
        Condition = { StringEquals = { "aws:RequestedRegion" = data.aws_region.this.name } }
      },
      {
        Sid      = "AllowSSMReadActions"
        Effect   = "Allow"
        Action   = "ssm:GetParameter"
        Resource = "arn:${data.aws_partition.this.partition}:ssm:${data.aws_region.this.name}::parameter/aws/service/*"
      },
      {
        Sid      = "AllowPricingReadActions"
        Effect   = "Allow"
        Action   = "pricing:GetProducts"
        Resource = "*"
      },
      {
        Sid      = "AllowInstanceProfileReadActions"
        Effect   = "Allow"
        Action   = "iam:GetInstanceProfile"
        Resource = aws_iam_instance_profile.karpenter_node.arn
      },
      {
        Sid       = "AllowPassingInstanceRole"
        Effect    = "Allow"
        Action    = "iam:PassRole"
        Resource  = aws_iam_role.karpenter_node.arn
        Condition = { StringEquals = { "iam:PassedToService" = "ec2.amazonaws.com" } }
      },
      {
        Sid      = "AllowAPIServerEndpointDiscovery"
        Effect   = "Allow"
        Action   = "eks:DescribeCluster"
        Resource = aws_eks_cluster.this.arn
      },
      {
        Sid      = "AllowInterruptionQueueActions"
        Effect   = "Allow"
        Action   = ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]
        Resource = aws_sqs_queue.karpenter.arn
      },
      # The nodes' root volumes are encrypted with the platform key: EC2 uses it, and makes
      # grants on it for the volumes, on the launcher's behalf.
      {
        Sid       = "AllowEncryptedRootVolumes"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*", "kms:DescribeKey"]
        Resource  = aws_kms_key.this.arn
        Condition = { StringEquals = { "kms:ViaService" = "ec2.${data.aws_region.this.name}.amazonaws.com" } }
      },
      {
        Sid       = "AllowEncryptedRootVolumeGrants"
        Effect    = "Allow"
        Action    = "kms:CreateGrant"
        Resource  = aws_kms_key.this.arn
        Condition = { Bool = { "kms:GrantIsForAWSResource" = "true" } }
      },
    ]
  })

  # The default EC2NodeClass and NodePool: nodes like the managed group's (AL2023, IMDSv2
  # with one hop, root volume encrypted with the platform key) in the private subnets,
  # with the cluster security group the data stores admit.
  karpenter_manifests = [
    {
      apiVersion = "karpenter.k8s.aws/v1"
      kind       = "EC2NodeClass"
      metadata   = { name = "default" }
      spec = {
        amiSelectorTerms           = [{ alias = "al2023@${var.node_ami_version}" }]
        instanceProfile            = aws_iam_instance_profile.karpenter_node.name
        subnetSelectorTerms        = [for s in aws_subnet.private : { id = s.id }]
        securityGroupSelectorTerms = [{ id = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id }]
        metadataOptions = {
          httpEndpoint            = "enabled"
          httpTokens              = "required"
          httpPutResponseHopLimit = 1
        }
        blockDeviceMappings = [{
          deviceName = "/dev/xvda"
          ebs = {
            volumeSize          = "100Gi"
            volumeType          = "gp3"
            encrypted           = true
            kmsKeyID            = aws_kms_key.this.arn
            deleteOnTermination = true
          }
        }]
        tags = merge(local.tags, { Name = "${var.name}-karpenter-node" })
      }
    },
    {
      apiVersion = "karpenter.sh/v1"
      kind       = "NodePool"
      metadata   = { name = "default" }
      spec = {
        template = {
          spec = {
            nodeClassRef = { group = "karpenter.k8s.aws", kind = "EC2NodeClass", name = "default" }
            # On-demand only: payment and booking hold sagas that a spot reclaim would cut.
            requirements = [
              { key = "kubernetes.io/arch", operator = "In", values = ["amd64"] },
              { key = "karpenter.sh/capacity-type", operator = "In", values = ["on-demand"] },
              { key = "karpenter.k8s.aws/instance-category", operator = "In", values = ["c", "m", "r"] },
              { key = "karpenter.k8s.aws/instance-generation", operator = "Gt", values = ["5"] },
            ]
            # Nodes are replaced monthly, so they pick up new AMIs and kernel patches.
            expireAfter = "720h"
          }
        }
        limits = { cpu = tostring(var.karpenter_cpu_limit) }
        disruption = {
          consolidationPolicy = "WhenEmptyOrUnderutilized"
          consolidateAfter    = "5m"
          # At most a tenth of the nodes are drained at a time.
          budgets = [{ nodes = "10%" }]
        }
      }
    },
  ]
}

# --- Helm releases -------------------------------------------------------------------------

resource "helm_release" "karpenter_crd" {
  name       = "karpenter-crd"
  namespace  = "kube-system"
  repository = local.charts.karpenter.repository
  chart      = "karpenter-crd"
  version    = local.charts.karpenter.version

  depends_on = [aws_eks_node_group.default]
}

resource "helm_release" "karpenter" {
  name       = "karpenter"
  namespace  = "kube-system"
  repository = local.charts.karpenter.repository
  chart      = "karpenter"
  version    = local.charts.karpenter.version
  # The karpenter-crd release owns the CRDs, so upgrades update them too.
  skip_crds = true

  values = [yamlencode({
    serviceAccount = {
      name        = local.controllers.karpenter.service_account
      annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.controller["karpenter"].arn }
    }
    settings = {
      clusterName       = aws_eks_cluster.this.name
      interruptionQueue = aws_sqs_queue.karpenter.name
    }
  })]

  depends_on = [helm_release.karpenter_crd, aws_iam_role_policy.controller, aws_eks_addon.core]
}

resource "helm_release" "karpenter_nodes" {
  name      = "karpenter-nodes"
  namespace = "kube-system"
  chart     = "${path.module}/charts/manifests"
  values    = [yamlencode({ manifests = local.karpenter_manifests })]

  depends_on = [helm_release.karpenter, aws_eks_access_entry.karpenter_node]
}

locals {
  # The other controllers: name -> namespace and values.
  releases = {
    aws-load-balancer-controller = {
      namespace = "kube-system"
      # Region and VPC given: with one IMDS hop the pods cannot look them up.
      values = {
        clusterName = aws_eks_cluster.this.name
        region      = data.aws_region.this.name
        vpcId       = aws_vpc.this.id
        serviceAccount = {
          name        = local.controllers["aws-load-balancer-controller"].service_account
          annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.controller["aws-load-balancer-controller"].arn }
        }
      }
    }
    # The SecretStore in the release's namespace holds the IRSA role (see controllers).
    external-secrets = { namespace = "external-secrets", values = {} }
    reloader         = { namespace = "reloader", values = {} }
  }
}

resource "helm_release" "addon" {
  for_each = local.releases

  name             = each.key
  namespace        = each.value.namespace
  create_namespace = true
  repository       = local.charts[each.key].repository
  chart            = each.key
  version          = local.charts[each.key].version
  values           = [yamlencode(each.value.values)]

  depends_on = [aws_eks_node_group.default, aws_eks_addon.core, aws_iam_role_policy.controller]
}
